package deploy

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Each way of reading the deployment files, and each kind of check on them, rejects a broken copy (made in
// memory from the real file, which stays as it is).

func TestCompose_Rejects(t *testing.T) {
	t.Parallel()
	code := readCode(t)
	raw, err := os.ReadFile("compose.yaml")
	require.NoError(t, err)
	for name, tc := range map[string]struct{ old, new, want string }{
		"unknown field":     {"  restart: unless-stopped\n  depends_on:", "  restart: unless-stopped\n  restrat: always\n  depends_on:", "restrat"},
		"wrong field type":  {"      replicas: 2", "      replicas: two", "replicas"},
		"env not read":      {"    IDENTITYD_LOG_FORMAT: json", "    IDENTITYD_LOG_FMT: json", "env IDENTITYD_LOG_FMT is read by the daemon"},
		"no role":           {`command: ["worker"]`, `command: ["wrker"]`, `runs a daemon role, not "wrker"`},
		"short grace":       {"stop_grace_period: 50s", "stop_grace_period: 20s", "stop_grace_period 20s covers the drain"},
		"probe path":        {`"--path", "/readyz"`, `"--path", "/ready"`, "health check asks /readyz"},
		"published widely":  {`"127.0.0.1:8081:8081"`, `"8081:8081"`, "published on loopback only"},
		"unlisted port":     {`"127.0.0.1:8081:8081"`, `"127.0.0.1:8082:8082"`, "publishes port 8082"},
		"redis not durable": {`"--appendfsync", "always"`, `"--appendfsync", "everysec"`, "--appendfsync always"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			broken := edit(t, tc.old, tc.new)(raw)
			project, err := loadCompose("compose.yaml", broken, composeEnv)
			if err != nil {
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.Contains(t, strings.Join(checkCompose(code, project), "\n"), tc.want)
		})
	}
}

func TestKubernetes_Rejects(t *testing.T) {
	t.Parallel()
	code := readCode(t)
	for name, tc := range map[string]struct{ file, old, new, want string }{
		"unknown field":         {"worker.yaml", "  replicas:", "  replica:", `unknown field "spec.replica"`},
		"wrong field type":      {"api.yaml", "terminationGracePeriodSeconds: 35", "terminationGracePeriodSeconds: soon", "terminationGracePeriodSeconds"},
		"missing resource":      {"kustomization.yaml", "  - worker.yaml", "  - workers.yaml", "workers.yaml"},
		"unknown kustomize key": {"kustomization.yaml", "resources:", "resourcez:", "resourcez"},
		"env not read":          {"worker.yaml", "name: REDIS_URL", "name: REDIS_ADDR", "env REDIS_ADDR is read by the daemon"},
		"probe path":            {"api.yaml", "path: /readyz", "path: /ready", "readinessProbe asks /readyz"},
		"short grace":           {"worker.yaml", "terminationGracePeriodSeconds: 35", "terminationGracePeriodSeconds: 10", "terminationGracePeriodSeconds 10s covers the drain"},
		"service on admin":      {"api.yaml", "targetPort: http", "targetPort: admin", "the admin listener is never exposed"},
		"admin open to all":     {"networkpolicy.yaml", "    - ports:\n        - port: http", "    - ports:\n        - port: admin", "the admin port is open only to named sources"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fs, err := k8sCopy(tc.file, edit(t, tc.old, tc.new))
			require.NoError(t, err)
			objs, err := buildKustomization(fs, "/k8s")
			if err != nil {
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.Contains(t, strings.Join(checkKubernetes(code, objs), "\n"), tc.want)
		})
	}
}
