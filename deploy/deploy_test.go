package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

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
		if before, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(before + " ")
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
	uid, _, _ := strings.Cut(strings.TrimPrefix(user, "USER "), ":")
	require.NotContains(t, []string{"0", "root"}, uid, "non-root")

	env := map[string]string{}
	for _, m := range regexp.MustCompile(`(\w+)=(\S+)`).FindAllStringSubmatch(find(final, "ENV ", ""), -1) {
		env[m[1]] = m[2]
	}
	require.NotEmpty(t, env)
	for name := range env {
		require.Contains(t, code.envDefaults, name, "ENV %s is read by the daemon", name)
	}
	apiPort, adminPort := port(code.envDefaults["IDENTITYD_ADDR"]), port(code.envDefaults["IDENTITYD_ADMIN_ADDR"])
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
	require.NoError(t, json.Unmarshal([]byte(s), &out), s)
	require.NotEmpty(t, out)
	return out
}

func TestSystemdUnit(t *testing.T) {
	t.Parallel()
	code := readCode(t)
	raw, err := os.ReadFile("identityd.service")
	require.NoError(t, err)
	unit := map[string][]string{}
	section := ""
	for line := range strings.SplitSeq(string(raw), "\n") {
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
	for line := range strings.SplitSeq(string(example), "\n") {
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
