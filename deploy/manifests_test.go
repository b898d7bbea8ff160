package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

func TestCompose(t *testing.T) {
	t.Parallel()
	code := readCode(t)
	raw, err := os.ReadFile("compose.yaml")
	require.NoError(t, err)
	project, err := loadCompose("compose.yaml", raw, composeEnv)
	require.NoError(t, err)
	require.Empty(t, checkCompose(code, project))

	_, err = loadCompose("compose.yaml", raw, nil)
	require.ErrorContains(t, err, "IDENTITYD_API_KEYS", "the API keys are required from the environment")
}

func TestKubernetes(t *testing.T) {
	t.Parallel()
	code := readCode(t)
	built, err := buildKustomization(filesys.MakeFsOnDisk(), "k8s")
	require.NoError(t, err)
	require.Empty(t, checkKubernetes(code, built))

	// Every manifest on disk decodes strictly and is part of the build: none is left out of the kustomization.
	names, err := filepath.Glob("k8s/*.yaml")
	require.NoError(t, err)
	inBuild := map[string]bool{}
	for _, o := range built {
		inBuild[objectName(t, o)] = true
	}
	for _, name := range names {
		if filepath.Base(name) == "kustomization.yaml" {
			continue
		}
		raw, err := os.ReadFile(name)
		require.NoError(t, err)
		objs, err := decodeManifests(raw)
		require.NoError(t, err, name)
		require.NotEmpty(t, objs, name)
		for _, o := range objs {
			require.True(t, inBuild[objectName(t, o)], "%s: %s is in the kustomization", name, objectName(t, o))
		}
	}
}

// objectName is an object's type and name.
func objectName(t *testing.T, o runtime.Object) string {
	t.Helper()
	m, err := meta.Accessor(o)
	require.NoError(t, err)
	return fmt.Sprintf("%T/%s", o, m.GetName())
}

// edit replaces old by replacement in a file's content, failing the test when old is not there, so a broken copy
// cannot silently equal the original.
func edit(t *testing.T, old, replacement string) func([]byte) []byte {
	t.Helper()
	return func(raw []byte) []byte {
		require.Contains(t, string(raw), old)
		return bytes.Replace(raw, []byte(old), []byte(replacement), 1)
	}
}
