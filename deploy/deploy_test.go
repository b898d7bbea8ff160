package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
)

// obj is one decoded YAML mapping.
type obj = map[string]any

// readYAML decodes every document of a YAML file.
func readYAML(t *testing.T, path string) []obj {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	var docs []obj
	for {
		var doc obj
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		require.NoError(t, err, path)
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// dig walks a path of mapping keys and list indexes; it fails the test when the path does not exist.
func dig(t *testing.T, v any, path ...any) any {
	t.Helper()
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(obj)
			require.True(t, ok, "want a mapping at %q of %v", k, path)
			v, ok = m[k]
			require.True(t, ok, "missing %q of %v", k, path)
		case int:
			l, ok := v.([]any)
			require.True(t, ok && k < len(l), "want a list with index %d of %v", k, path)
			v = l[k]
		}
	}
	return v
}

func str(t *testing.T, v any, path ...any) string {
	t.Helper()
	got := dig(t, v, path...)
	switch x := got.(type) {
	case string:
		return x
	case int:
		return strconv.Itoa(x)
	}
	t.Fatalf("want a string at %v, got %T", path, got)
	return ""
}

func list(t *testing.T, v any, path ...any) []any {
	t.Helper()
	l, ok := dig(t, v, path...).([]any)
	require.True(t, ok, "want a list at %v", path)
	return l
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	code := readCode(t)
	raw, err := os.ReadFile("Dockerfile")
	require.NoError(t, err)
	var stages [][]string // instructions per stage, continuation lines joined
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		ins := cur.String()
		cur.Reset()
		if strings.HasPrefix(ins, "FROM ") {
			stages = append(stages, nil)
		}
		require.NotEmpty(t, stages, "instruction before FROM: %s", ins)
		stages[len(stages)-1] = append(stages[len(stages)-1], ins)
	}
	require.GreaterOrEqual(t, len(stages), 2, "multi-stage")

	build, final := stages[0], stages[len(stages)-1]
	require.Regexp(t, `^FROM golang:`+regexp.QuoteMeta(code.goVersion)+`(\.\d+)?(-\S+)? AS build$`, build[0],
		"the build stage uses go.mod's Go version")
	goBuild := find(build, "RUN ", "go build")
	require.NotEmpty(t, goBuild, "a go build step")
	require.Contains(t, goBuild, "CGO_ENABLED=0", "static binary")
	require.Contains(t, goBuild, "./cmd/identityd")
	_, err = os.Stat("../cmd/identityd/main.go")
	require.NoError(t, err)

	require.Regexp(t, `^FROM (gcr\.io/distroless/static\S*|scratch)$`, final[0], "small final image")
	user := find(final, "USER ", "")
	require.NotEmpty(t, user)
	uid := strings.Split(strings.TrimPrefix(user, "USER "), ":")[0]
	require.NotContains(t, []string{"0", "root"}, uid, "non-root")

	env := map[string]string{}
	for _, m := range regexp.MustCompile(`(\w+)=(\S+)`).FindAllStringSubmatch(find(final, "ENV ", ""), -1) {
		env[m[1]] = m[2]
	}
	require.NotEmpty(t, env)
	for name := range env {
		require.Contains(t, code.envDefaults, name, "ENV %s is read by the daemon", name)
	}
	apiPort, adminPort := port(t, code.envDefaults["IDENTITYD_ADDR"]), port(t, code.envDefaults["IDENTITYD_ADMIN_ADDR"])
	require.Equal(t, "0.0.0.0:"+apiPort, env["IDENTITYD_ADDR"])
	require.Equal(t, "0.0.0.0:"+adminPort, env["IDENTITYD_ADMIN_ADDR"])
	require.ElementsMatch(t, []string{apiPort, adminPort}, strings.Fields(strings.TrimPrefix(find(final, "EXPOSE ", ""), "EXPOSE ")))

	require.Equal(t, `ENTRYPOINT ["/identityd"]`, find(final, "ENTRYPOINT ", ""))
	cmd := jsonArgs(t, strings.TrimPrefix(find(final, "CMD ", ""), "CMD "))
	require.True(t, code.daemonRoles[cmd[0]], "CMD runs a daemon role: %v", cmd)
	health := find(final, "HEALTHCHECK ", "")
	_, hc, ok := strings.Cut(health, " CMD ")
	require.True(t, ok, health)
	hcArgs := jsonArgs(t, hc)
	require.Equal(t, "/identityd", hcArgs[0])
	require.True(t, code.subcommands[hcArgs[1]], "health check subcommand %q exists", hcArgs[1])
}

// find returns the first instruction starting with prefix that contains sub.
func find(instructions []string, prefix, sub string) string {
	for _, ins := range instructions {
		if strings.HasPrefix(ins, prefix) && strings.Contains(ins, sub) {
			return ins
		}
	}
	return ""
}

func jsonArgs(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	require.NoError(t, yaml.Unmarshal([]byte(s), &out), s)
	require.NotEmpty(t, out)
	return out
}

func TestCompose(t *testing.T) {
	t.Parallel()
	code := readCode(t)
	docs := readYAML(t, "compose.yaml")
	require.Len(t, docs, 1)
	services, ok := dig(t, docs[0], "services").(obj)
	require.True(t, ok)

	redisCmd := strings.Join(strings.Fields(fmt.Sprint(dig(t, services, "redis", "command"))), " ")
	require.Contains(t, redisCmd, "--appendonly yes")
	require.Contains(t, redisCmd, "--appendfsync always")

	apiPort, adminPort := port(t, code.envDefaults["IDENTITYD_ADDR"]), port(t, code.envDefaults["IDENTITYD_ADMIN_ADDR"])
	roles := map[string]int{}
	for name, svc := range services {
		if name == "redis" {
			continue
		}
		role := str(t, svc, "command", 0)
		require.True(t, code.daemonRoles[role], "%s runs a daemon role, not %q", name, role)
		replicas := 1
		if d, ok := svc.(obj)["deploy"]; ok {
			replicas = dig(t, d, "replicas").(int)
		}
		roles[role] += replicas

		env, ok := dig(t, svc, "environment").(obj)
		require.True(t, ok, "%s: environment is a mapping", name)
		for k := range env {
			require.Contains(t, code.envDefaults, k, "%s: env %s is read by the daemon", name, k)
		}
		require.Equal(t, "0.0.0.0:"+adminPort, str(t, env, "IDENTITYD_ADMIN_ADDR"), name)
		require.Equal(t, "redis://redis:6379/0", str(t, env, "REDIS_URL"), name)
		if role != "worker" {
			require.Equal(t, "0.0.0.0:"+apiPort, str(t, env, "IDENTITYD_ADDR"), name)
			require.Contains(t, str(t, env, "IDENTITYD_API_KEYS"), "${IDENTITYD_API_KEYS", name)
		}

		hc := list(t, svc, "healthcheck", "test")
		require.Equal(t, "CMD", hc[0])
		require.Equal(t, "/identityd", hc[1])
		require.True(t, code.subcommands[fmt.Sprint(hc[2])], "%s: health check subcommand", name)
		if len(hc) > 3 {
			require.Equal(t, []any{"--path", code.adminPaths["pathReadyz"]}, hc[3:], name)
		}

		grace, err := time.ParseDuration(str(t, svc, "stop_grace_period"))
		require.NoError(t, err)
		require.GreaterOrEqual(t, grace, code.grace(role), "%s: stop_grace_period covers the drain", name)

		dockerfile := filepath.Join(str(t, svc, "build", "context"), str(t, svc, "build", "dockerfile"))
		_, err = os.Stat(dockerfile)
		require.NoError(t, err, "%s builds %s", name, dockerfile)

		published, _ := svc.(obj)["ports"].([]any) // workers publish nothing
		for _, p := range published {
			parts := strings.Split(fmt.Sprint(p), ":")
			require.Contains(t, []string{apiPort, adminPort}, parts[len(parts)-1], "%s publishes a port the daemon listens on", name)
			if len(parts) == 3 {
				require.Equal(t, "127.0.0.1", parts[0], "%s: published on loopback only", name)
			}
		}
	}
	require.Equal(t, map[string]int{"api": 1, "worker": 2}, roles, "one API and two workers")
}

func TestKubernetes(t *testing.T) {
	t.Parallel()
	code := readCode(t)
	kust := readYAML(t, "k8s/kustomization.yaml")[0]
	var resources []string
	for _, r := range list(t, kust, "resources") {
		resources = append(resources, fmt.Sprint(r))
	}
	files, err := filepath.Glob("k8s/*.yaml")
	require.NoError(t, err)
	var onDisk []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			onDisk = append(onDisk, filepath.Base(f))
		}
	}
	require.ElementsMatch(t, onDisk, resources, "kustomization lists every manifest")

	byKind := map[string][]obj{}
	for _, r := range resources {
		for _, doc := range readYAML(t, filepath.Join("k8s", r)) {
			kind := str(t, doc, "kind")
			byKind[kind] = append(byKind[kind], doc)
		}
	}
	require.Len(t, byKind["Secret"], 1)
	secret := byKind["Secret"][0]
	secretName := str(t, secret, "metadata", "name")
	secretKeys := dig(t, secret, "stringData").(obj)

	apiPort, adminPort := port(t, code.envDefaults["IDENTITYD_ADDR"]), port(t, code.envDefaults["IDENTITYD_ADMIN_ADDR"])
	roles := map[string]obj{} // role → pod template labels
	apiPortNames := map[string]bool{}
	for _, d := range byKind["Deployment"] {
		name := str(t, d, "metadata", "name")
		pod := dig(t, d, "spec", "template")
		labels := dig(t, pod, "metadata", "labels").(obj)
		require.Equal(t, dig(t, d, "spec", "selector", "matchLabels"), labels, "%s: selector matches its pods", name)
		require.Equal(t, true, dig(t, pod, "spec", "securityContext", "runAsNonRoot"), name)
		graceSeconds := dig(t, pod, "spec", "terminationGracePeriodSeconds").(int)
		grace := time.Second * time.Duration(graceSeconds)

		containers := list(t, pod, "spec", "containers")
		require.Len(t, containers, 1, name)
		c := containers[0]
		role := str(t, c, "args", 0)
		require.True(t, code.daemonRoles[role], "%s runs a daemon role, not %q", name, role)
		require.NotContains(t, roles, role, "one Deployment per role")
		roles[role] = labels
		require.GreaterOrEqual(t, grace, code.grace(role), "%s: terminationGracePeriodSeconds covers the drain", name)

		ports := map[string]string{} // name → containerPort
		for _, p := range list(t, c, "ports") {
			ports[str(t, p, "name")] = str(t, p, "containerPort")
		}
		env := map[string]any{}
		for _, e := range list(t, c, "env") {
			n := str(t, e, "name")
			require.Contains(t, code.envDefaults, n, "%s: env %s is read by the daemon", name, n)
			if ref, ok := e.(obj)["valueFrom"]; ok {
				require.Equal(t, secretName, str(t, ref, "secretKeyRef", "name"), "%s: %s", name, n)
				require.Contains(t, secretKeys, str(t, ref, "secretKeyRef", "key"), "%s: %s", name, n)
				env[n] = ref
				continue
			}
			env[n] = str(t, e, "value")
		}
		require.Equal(t, adminPort, ports["admin"], name)
		require.Equal(t, "0.0.0.0:"+adminPort, env["IDENTITYD_ADMIN_ADDR"], name)
		require.Contains(t, env, "REDIS_URL", name)
		if role != "worker" {
			require.Equal(t, apiPort, ports["http"], name)
			require.Equal(t, "0.0.0.0:"+apiPort, env["IDENTITYD_ADDR"], name)
			_, fromSecret := env["IDENTITYD_API_KEYS"].(obj)
			require.True(t, fromSecret, "%s: API keys come from the Secret", name)
			for p := range ports {
				apiPortNames[p] = true
			}
		}

		for probe, path := range map[string]string{"readinessProbe": code.adminPaths["pathReadyz"], "livenessProbe": code.adminPaths["pathHealthz"]} {
			require.Equal(t, path, str(t, c, probe, "httpGet", "path"), "%s: %s", name, probe)
			require.Equal(t, adminPort, ports[str(t, c, probe, "httpGet", "port")], "%s: %s on the admin port", name, probe)
		}
		for _, res := range []string{"cpu", "memory"} {
			require.NotEmpty(t, str(t, c, "resources", "requests", res), "%s: resource request %s", name, res)
		}
	}
	require.Contains(t, roles, "api")
	require.Contains(t, roles, "worker")

	require.Len(t, byKind["Service"], 1)
	svc := byKind["Service"][0]
	require.Equal(t, roles["api"], dig(t, svc, "spec", "selector"), "the Service selects the API pods")
	for _, p := range list(t, svc, "spec", "ports") {
		require.True(t, apiPortNames[str(t, p, "targetPort")], "Service targets a named API port")
		require.NotEqual(t, "admin", str(t, p, "targetPort"), "the admin listener is never exposed by the Service")
	}

	var covered []string
	for _, pdb := range byKind["PodDisruptionBudget"] {
		sel := dig(t, pdb, "spec", "selector", "matchLabels")
		for role, labels := range roles {
			if fmt.Sprint(sel) == fmt.Sprint(labels) {
				covered = append(covered, role)
			}
		}
		require.NotNil(t, dig(t, pdb, "spec", "minAvailable"))
	}
	slices.Sort(covered)
	require.Equal(t, []string{"api", "worker"}, covered, "a PodDisruptionBudget per Deployment")
}

// The NetworkPolicy covers every identityd pod and lets nothing reach the admin port but the sources it names.
func TestKubernetesNetworkPolicy(t *testing.T) {
	t.Parallel()
	docs := readYAML(t, "k8s/networkpolicy.yaml")
	require.Len(t, docs, 1)
	np := docs[0]
	require.Equal(t, "NetworkPolicy", str(t, np, "kind"))
	require.Equal(t, obj{"app.kubernetes.io/name": "identityd"}, dig(t, np, "spec", "podSelector", "matchLabels"),
		"it selects the API and the worker pods")
	require.Equal(t, []any{"Ingress"}, dig(t, np, "spec", "policyTypes"))
	opened := map[string]bool{}
	for _, rule := range list(t, np, "spec", "ingress") {
		from, limited := rule.(obj)["from"]
		for _, p := range list(t, rule, "ports") {
			name := str(t, p, "port")
			require.Contains(t, []string{"http", "admin"}, name, "ports by name, as the Deployments call them")
			if name == "admin" {
				require.True(t, limited && len(from.([]any)) > 0, "the admin port is open only to named sources")
			}
			opened[name] = true
		}
	}
	require.Equal(t, map[string]bool{"http": true, "admin": true}, opened)
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	code := readCode(t)
	raw, err := os.ReadFile("identityd.service")
	require.NoError(t, err)
	unit := map[string][]string{}
	section := ""
	for _, line := range strings.Split(string(raw), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "["):
			section = strings.Trim(line, "[]")
		default:
			k, v, ok := strings.Cut(line, "=")
			require.True(t, ok, line)
			unit[section+"."+k] = append(unit[section+"."+k], v)
		}
	}
	exec := strings.Fields(unit["Service.ExecStart"][0])
	require.Equal(t, "/usr/local/bin/identityd", exec[0])
	require.True(t, code.daemonRoles[exec[1]], "ExecStart runs a daemon role: %v", exec)
	require.Equal(t, []string{"SIGTERM"}, unit["Service.KillSignal"])
	stop, err := time.ParseDuration(unit["Service.TimeoutStopSec"][0])
	require.NoError(t, err)
	require.GreaterOrEqual(t, stop, code.grace(exec[1]), "TimeoutStopSec covers the drain")
	require.Equal(t, []string{"yes"}, unit["Service.DynamicUser"], "not root")
	require.Equal(t, []string{"multi-user.target"}, unit["Install.WantedBy"])
	require.Equal(t, []string{"/etc/identityd/identityd.env"}, unit["Service.EnvironmentFile"])

	example, err := os.ReadFile("identityd.env.example")
	require.NoError(t, err)
	names := 0
	for _, line := range strings.Split(string(example), "\n") {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, _, ok := strings.Cut(line, "=")
		require.True(t, ok, line)
		require.Contains(t, code.envDefaults, name, "env file: %s is read by the daemon", name)
		names++
	}
	require.Positive(t, names)
}
