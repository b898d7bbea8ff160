package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	composetypes "github.com/compose-spec/compose-go/v2/types"
)

// problems collects what a deployment file gets wrong, so each check can also be run on a broken copy and be
// seen to fail.
type problems []string

// expectf records the problem when ok is false.
func (p *problems) expectf(ok bool, format string, args ...any) {
	if !ok {
		*p = append(*p, fmt.Sprintf(format, args...))
	}
}

// checkCompose checks a loaded Compose project against the code: daemon roles, environment names, ports,
// health checks, grace periods, the build, and the Redis durability flags.
func checkCompose(code codeFacts, project *composetypes.Project) problems {
	var p problems
	redis, ok := project.Services["redis"]
	p.expectf(ok, "a redis service")
	redisCmd := strings.Join(redis.Command, " ")
	p.expectf(strings.Contains(redisCmd, "--appendonly yes"), "redis: --appendonly yes")
	p.expectf(strings.Contains(redisCmd, "--appendfsync always"), "redis: --appendfsync always")

	apiPort, adminPort := port(code.envDefaults["IDENTITYD_ADDR"]), port(code.envDefaults["IDENTITYD_ADMIN_ADDR"])
	roles := map[string]int{}
	for name, svc := range project.Services {
		if name == "redis" {
			continue
		}
		if len(svc.Command) == 0 {
			p.expectf(false, "%s: a command", name)
			continue
		}
		role := svc.Command[0]
		p.expectf(code.daemonRoles[role], "%s runs a daemon role, not %q", name, role)
		replicas := 1
		if svc.Deploy != nil && svc.Deploy.Replicas != nil {
			replicas = *svc.Deploy.Replicas
		}
		roles[role] += replicas

		for k := range svc.Environment {
			_, known := code.envDefaults[k]
			p.expectf(known, "%s: env %s is read by the daemon", name, k)
		}
		env := func(k string) string {
			if v := svc.Environment[k]; v != nil {
				return *v
			}
			return ""
		}
		p.expectf(env("IDENTITYD_ADMIN_ADDR") == "0.0.0.0:"+adminPort, "%s: IDENTITYD_ADMIN_ADDR on 0.0.0.0:%s", name, adminPort)
		p.expectf(env("REDIS_URL") == "redis://redis:6379/0", "%s: REDIS_URL is the redis service", name)
		if role != "worker" {
			p.expectf(env("IDENTITYD_ADDR") == "0.0.0.0:"+apiPort, "%s: IDENTITYD_ADDR on 0.0.0.0:%s", name, apiPort)
			p.expectf(env("IDENTITYD_API_KEYS") == composeEnv["IDENTITYD_API_KEYS"], "%s: API keys from the environment", name)
		}

		var hc []string
		if svc.HealthCheck != nil {
			hc = svc.HealthCheck.Test
		}
		p.expectf(len(hc) >= 3 && hc[0] == "CMD" && hc[1] == "/identityd" && code.subcommands[hc[2]],
			"%s: the health check runs an identityd subcommand: %v", name, hc)
		if len(hc) > 3 {
			p.expectf(slices.Equal(hc[3:], []string{"--path", code.adminPaths["pathReadyz"]}), "%s: health check asks %s",
				name, code.adminPaths["pathReadyz"])
		}

		var grace time.Duration
		if svc.StopGracePeriod != nil {
			grace = time.Duration(*svc.StopGracePeriod)
		}
		p.expectf(grace >= code.grace(role), "%s: stop_grace_period %s covers the drain (%s)", name, grace, code.grace(role))

		if svc.Build == nil {
			p.expectf(false, "%s: a build", name)
		} else {
			_, err := os.Stat(filepath.Join(svc.Build.Context, svc.Build.Dockerfile))
			p.expectf(err == nil, "%s builds %s: %v", name, svc.Build.Dockerfile, err)
		}

		for _, pc := range svc.Ports { // workers publish nothing
			target := strconv.FormatUint(uint64(pc.Target), 10)
			p.expectf(target == apiPort || target == adminPort, "%s publishes port %s, which the daemon does not listen on", name, target)
			p.expectf(pc.HostIP == "127.0.0.1", "%s: port %s published on loopback only, not %q", name, target, pc.HostIP)
		}
	}
	p.expectf(fmt.Sprint(roles) == fmt.Sprint(map[string]int{"api": 1, "worker": 2}), "one API and two workers, not %v", roles)
	return p
}
