package deploy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/worker"
)

// codeFacts is what the deployment files must agree with, read from the daemon's source, so a renamed
// variable, a moved port or a new probe path breaks this test instead of a deployment.
type codeFacts struct {
	// envDefaults maps every environment variable the daemon reads (env("NAME", default)) to its default.
	envDefaults map[string]string
	// subcommands are all commands Main.ParseFlags accepts; daemonRoles the ones that run the daemon.
	subcommands, daemonRoles map[string]bool
	// adminPaths are the admin listener's paths by constant name (pathReadyz → /readyz).
	adminPaths map[string]string
	// httpDrain and taskDrain bound the shutdown: HTTP drain, then running tasks.
	httpDrain, taskDrain time.Duration
	// goVersion is go.mod's major.minor.
	goVersion string
}

const cmdDir = "../cmd/identityd"

func readCode(t *testing.T) codeFacts {
	t.Helper()
	f := codeFacts{envDefaults: map[string]string{}, subcommands: map[string]bool{}, daemonRoles: map[string]bool{},
		adminPaths: map[string]string{}, taskDrain: worker.DefaultShutdownTimeout}
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(cmdDir, "*.go"))
	require.NoError(t, err)
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		ast.Inspect(file, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if id, ok := n.Fun.(*ast.Ident); ok && id.Name == "env" && len(n.Args) == 2 && isStringLit(n.Args[0]) {
					addEnvDefault(t, f.envDefaults, stringLit(t, n.Args[0]), stringLit(t, n.Args[1]))
				}
			case *ast.FuncDecl:
				if n.Name.Name == "ParseFlags" {
					readSubcommands(t, n, f.subcommands, f.daemonRoles)
				}
			case *ast.ValueSpec:
				for i, id := range n.Names {
					switch {
					case strings.HasPrefix(id.Name, "path") && i < len(n.Values):
						f.adminPaths[id.Name] = stringLit(t, n.Values[i])
					case id.Name == "daemonFlags" && i < len(n.Values):
						readFlagTable(t, n.Values[i], f.envDefaults)
					case id.Name == "httpDrainTimeout":
						f.httpDrain = durationLit(t, n.Values[i])
					}
				}
			}
			return true
		})
	}
	gomod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	require.NotNil(t, m, "go directive in go.mod")
	f.goVersion = string(m[1])

	require.NotEmpty(t, f.envDefaults["IDENTITYD_ADDR"], "the source was read")
	require.True(t, f.daemonRoles["api"] && f.daemonRoles["worker"] && f.daemonRoles["serve"], "%v", f.daemonRoles)
	require.Equal(t, "/readyz", f.adminPaths["pathReadyz"])
	require.Equal(t, "/healthz", f.adminPaths["pathHealthz"])
	require.Positive(t, f.httpDrain)
	require.NotEmpty(t, port(f.envDefaults["IDENTITYD_ADDR"]))
	require.NotEmpty(t, port(f.envDefaults["IDENTITYD_ADMIN_ADDR"]))
	return f
}

// readSubcommands collects the string cases of ParseFlags' switch; a case that calls parseDaemonFlags lists
// the daemon roles.
func readSubcommands(t *testing.T, fn *ast.FuncDecl, all, daemon map[string]bool) {
	t.Helper()
	ast.Inspect(fn, func(n ast.Node) bool {
		cc, ok := n.(*ast.CaseClause)
		if !ok {
			return true
		}
		var names []string
		for _, e := range cc.List {
			if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				names = append(names, stringLit(t, lit))
			}
		}
		isDaemon := false
		for _, stmt := range cc.Body {
			ast.Inspect(stmt, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok {
					if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "parseDaemonFlags" {
						isDaemon = true
					}
				}
				return true
			})
		}
		for _, name := range names {
			all[name] = true
			if isDaemon {
				daemon[name] = true
			}
		}
		return true
	})
}

// readFlagTable reads the daemon's flag table: each row is {name, env, default, kind, usage}.
func readFlagTable(t *testing.T, e ast.Expr, defaults map[string]string) {
	t.Helper()
	table, ok := e.(*ast.CompositeLit)
	require.True(t, ok, "daemonFlags is a composite literal")
	for _, row := range table.Elts {
		lit, ok := row.(*ast.CompositeLit)
		require.True(t, ok && len(lit.Elts) == 5, "a daemonFlags row is {name, env, default, kind, usage}")
		if name := stringLit(t, lit.Elts[1]); name != "" {
			addEnvDefault(t, defaults, name, stringLit(t, lit.Elts[2]))
		}
	}
}

func addEnvDefault(t *testing.T, defaults map[string]string, name, def string) {
	t.Helper()
	if prev, seen := defaults[name]; seen {
		require.Equal(t, prev, def, "two defaults for %s", name)
	}
	defaults[name] = def
}

func isStringLit(e ast.Expr) bool {
	lit, ok := e.(*ast.BasicLit)
	return ok && lit.Kind == token.STRING
}

func stringLit(t *testing.T, e ast.Expr) string {
	t.Helper()
	lit, ok := e.(*ast.BasicLit)
	require.True(t, ok && lit.Kind == token.STRING, "want a string literal")
	s, err := strconv.Unquote(lit.Value)
	require.NoError(t, err)
	return s
}

// durationLit evaluates `N * time.Unit`.
func durationLit(t *testing.T, e ast.Expr) time.Duration {
	t.Helper()
	bin, ok := e.(*ast.BinaryExpr)
	require.True(t, ok && bin.Op == token.MUL, "want N * time.Unit")
	lit, ok := bin.X.(*ast.BasicLit)
	require.True(t, ok)
	n, err := strconv.Atoi(lit.Value)
	require.NoError(t, err)
	sel, ok := bin.Y.(*ast.SelectorExpr)
	require.True(t, ok)
	unit := map[string]time.Duration{"Millisecond": time.Millisecond, "Second": time.Second, "Minute": time.Minute}[sel.Sel.Name]
	require.NotZero(t, unit, sel.Sel.Name)
	return time.Duration(n) * unit
}

// port returns the port of a host:port ("" when addr is not one; readCode checks the daemon's are).
func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// grace is the shortest stop grace period that lets role drain completely, with 5s to spare.
func (f codeFacts) grace(role string) time.Duration {
	need := map[string]time.Duration{"api": f.httpDrain, "worker": f.taskDrain, "serve": f.httpDrain + f.taskDrain}[role]
	return need + 5*time.Second
}

func TestReadCode(t *testing.T) {
	t.Parallel()
	f := readCode(t)
	require.Equal(t, "127.0.0.1:8080", f.envDefaults["IDENTITYD_ADDR"])
	require.Equal(t, "127.0.0.1:8081", f.envDefaults["IDENTITYD_ADMIN_ADDR"])
	require.Contains(t, f.envDefaults, "REDIS_URL")
	require.True(t, f.subcommands["healthcheck"])
	require.False(t, f.daemonRoles["healthcheck"])
	require.Equal(t, 25*time.Second, f.httpDrain)
}
