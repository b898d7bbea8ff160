package deploy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/loader"
	composetypes "github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// The deployment files are read with their own ecosystems' libraries, offline: Compose's loader (its JSON
// schema is embedded), Kubernetes' API types decoded strictly, and kustomize's build as `kubectl apply -k`
// runs it. They are test-only imports: the identityd binary links none of them.

// composeEnv is the environment compose.yaml is loaded with: the variables it requires, set.
var composeEnv = map[string]string{"IDENTITYD_API_KEYS": "sk_test_deploy=acct_deploy"}

// loadCompose loads a Compose file as `docker compose` would — schema validation, interpolation from env,
// merges and anchors resolved — with its directory as the working directory. The loader writes to the
// environment it is given (the project name), so it gets a copy.
func loadCompose(path string, content []byte, env map[string]string) (*composetypes.Project, error) {
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	return loader.LoadWithContext(context.Background(), composetypes.ConfigDetails{WorkingDir: dir,
		ConfigFiles: []composetypes.ConfigFile{{Filename: path, Content: content}}, Environment: maps.Clone(env)})
}

// k8sDecoder decodes the kinds the manifests use into their k8s.io/api types, strictly: an unknown or
// duplicate field is an error.
func k8sDecoder() (runtime.Decoder, error) {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme,
		policyv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer(), nil
}

// decodeManifests decodes every document of a YAML stream strictly.
func decodeManifests(raw []byte) ([]runtime.Object, error) {
	dec, err := k8sDecoder()
	if err != nil {
		return nil, err
	}
	var objs []runtime.Object
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(raw)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
}

// buildKustomization builds the kustomization in dir of fs, as `kubectl apply -k` would, and decodes what it
// produces strictly.
func buildKustomization(fs filesys.FileSystem, dir string) ([]runtime.Object, error) {
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build: %w", err)
	}
	raw, err := resources.AsYaml()
	if err != nil {
		return nil, err
	}
	return decodeManifests(raw)
}

// k8sCopy copies deploy/k8s into an in-memory file system at /k8s, with edit applied to the named file's
// content, so a check can be shown to fail without touching the real files.
func k8sCopy(file string, edit func([]byte) []byte) (filesys.FileSystem, error) {
	fs := filesys.MakeFsInMemory()
	names, err := filepath.Glob("k8s/*.yaml")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		raw, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		if filepath.Base(name) == file {
			raw = edit(raw)
		}
		if err := fs.WriteFile("/k8s/"+filepath.Base(name), raw); err != nil {
			return nil, err
		}
	}
	return fs, nil
}
