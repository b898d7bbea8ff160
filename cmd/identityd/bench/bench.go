// Package bench is `identityd bench`: a load generator that seeds sessions into a Redis and measures, in one
// run on that Redis, the queue's own ceiling and identityd's redaction, list and memory figures.
package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/identityd/identityd/api"
	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/worker"
)

// Command is `identityd bench`: it seeds sessions into a Redis and measures, in the same run on the same
// Redis, the queue's own ceiling and identityd's redaction and list throughput.
type Command struct {
	redisURL     string
	sessions     int
	redactions   int
	concurrency  int
	listClients  int
	listDuration time.Duration
	noopTasks    int
	keep         bool
	cpuProfile   string
	listOnly     bool
	hold         bool
	readClients  int
	readDuration time.Duration
}

// ParseFlags reads bench's flags; the flag package writes usage to stderr.
func ParseFlags(args []string, stderr io.Writer) (*Command, error) {
	fs := flag.NewFlagSet("identityd bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &Command{}
	fs.StringVar(&c.redisURL, "redis-url", os.Getenv("REDIS_URL"), "Redis to measure (required; use a database you can spare)")
	fs.IntVar(&c.sessions, "sessions", 20000, "sessions to seed (each verified, with a report, events and request logs)")
	fs.IntVar(&c.redactions, "redactions", 5000, "sessions redacted one call at a time for (b), and again as many by one bulk job for (c)")
	fs.IntVar(&c.concurrency, "concurrency", 20, "worker goroutines, for the no-op baseline and the redaction runs alike")
	fs.IntVar(&c.listClients, "list-clients", 32, "concurrent clients of the list benchmark")
	fs.DurationVar(&c.listDuration, "list-duration", 5*time.Second, "how long each list measurement runs")
	fs.IntVar(&c.noopTasks, "noop-tasks", 20000, "no-op tasks for the asynq baseline (a)")
	fs.BoolVar(&c.keep, "keep", false, "keep the seeded keys afterwards")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the measurements (not the seeding) to this file; with --hold, of the hold instead")
	fs.BoolVar(&c.listOnly, "list-only", false, "skip (a)–(c): seed every session for the list measurements only (--redactions is ignored)")
	fs.BoolVar(&c.hold, "hold", false, "after the table, keep the seeded store and the API up, print its URL and keys, and wait for SIGINT or SIGTERM (for an outside load generator such as wrk)")
	fs.IntVar(&c.readClients, "read-clients", 16, "concurrent clients listing the read-cost account for (e)")
	fs.DurationVar(&c.readDuration, "read-duration", 10*time.Second, "how long the read-cost account is listed for (e)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if c.redisURL == "" {
		return nil, errors.New("bench needs --redis-url (or REDIS_URL): it measures a real Redis")
	}
	if _, err := redis.ParseURL(c.redisURL); err != nil {
		return nil, errors.New("invalid --redis-url: want redis://[:password@]host:port/db") // never echo the URL: it may hold a password
	}
	if c.listOnly {
		c.redactions = 1 // unused; keeps the check below honest for the flags that are used
	}
	if c.sessions < 100 || c.redactions < 1 || c.redactions > c.sessions/2 || c.concurrency < 1 || c.listClients < 1 ||
		c.noopTasks < 1 || c.readClients < 1 || c.readDuration <= 0 {
		return nil, errors.New("bench: need --sessions ≥ 100, 1 ≤ --redactions ≤ sessions/2, and positive --concurrency, --list-clients, --noop-tasks, --read-clients, --read-duration")
	}
	return c, nil
}

// benchEnv is one bench run's namespace and components.
type benchEnv struct {
	tag     string // the run's key prefix: every key it writes starts with it
	rdb     redis.UniversalClient
	st      *store.Store
	scope   store.Scope
	key     string
	queues  worker.Queues
	metrics *events.Metrics
	apiURL  string
	redacts atomic.Int64 // `.redacted` events seen by the emitter
	// seeder is an API handler whose queue drops tasks: seeding writes through the real API without leaving
	// verification tasks for the measured worker runs.
	seeder http.Handler
}

// dropTasks is the seeder's queue.
type dropTasks struct{}

func (dropTasks) EnqueueVerify(context.Context, store.Scope, string, string) error    { return nil }
func (dropTasks) EnqueueRedact(context.Context, store.Scope, string) error            { return nil }
func (dropTasks) EnqueueBulkRedaction(context.Context, store.Scope, string) error     { return nil }
func (dropTasks) EnqueueWebhookRedelivery(context.Context, store.Scope, string) error { return nil }

// countRedacted is the bench's fan-out: it counts `.redacted` events so the run knows when scrubs finish, and
// takes the events out of the webhook outbox as a real fan-out does, so the store holds what it would in
// production.
type countRedacted struct{ env *benchEnv }

// Fanout implements events.Fanout.
func (c countRedacted) Fanout(ctx context.Context, sc store.Scope, evs []*store.Event) error {
	ids := make([]string, 0, len(evs))
	for _, ev := range evs {
		if ev.Type == store.EventSessionRedacted {
			c.env.redacts.Add(1)
		}
		ids = append(ids, ev.ID)
	}
	return c.env.st.ClearOutbox(context.WithoutCancel(ctx), sc, ids...)
}

type benchRow struct{ name, value, note string }

// Run seeds, measures and prints the table to stdout; with --hold it then serves until ctx ends.
func (c *Command) Run(ctx context.Context, stdout io.Writer) error {
	opt, _ := redis.ParseURL(c.redisURL)
	opt.PoolSize = max(64, c.listClients*2)
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis does not answer: %w", err)
	}
	tag := "bench" + store.RandomString(6)
	env := &benchEnv{tag: tag, rdb: rdb, key: "sk_test_" + store.RandomString(24), queues: worker.NewQueues(tag),
		metrics: events.NewMetrics(nil)}
	env.st = store.New(rdb, store.Config{Prefix: tag})
	key, _ := api.ParseAPIKey(env.key)
	env.scope = key.Scope
	if !c.keep {
		defer cleanupPrefix(context.WithoutCancel(ctx), rdb, tag)
	}
	logf := func(format string, args ...any) { fmt.Fprintf(stdout, "# "+format+"\n", args...) }
	version, _ := rdb.InfoMap(ctx, "server").Result()
	logf("identityd bench: %d cores (GOMAXPROCS %d), redis %s, %d sessions", runtime.NumCPU(), runtime.GOMAXPROCS(0),
		version["Server"]["redis_version"], c.sessions)

	// A second account holds the N/10 store, so list latency is compared at two sizes in one run.
	smallKey, _ := api.ParseAPIKey("sk_test_" + store.RandomString(24))
	readKey, _ := api.ParseAPIKey("sk_test_" + store.RandomString(24)) // the read-cost account of (e)
	stopAPI, err := env.startAPI(key, smallKey, readKey)
	if err != nil {
		return err
	}
	defer stopAPI()
	small := &benchEnv{rdb: rdb, st: env.st, scope: smallKey.Scope, key: smallKey.Secret, queues: env.queues,
		metrics: env.metrics, apiURL: env.apiURL, seeder: env.seeder}

	redactions := c.redactions
	if c.listOnly {
		redactions = 0
	}
	logf("seeding %d sessions (large account) and %d (small account)", c.sessions, c.sessions/10)
	seedStart := time.Now()
	if err := seedSessions(ctx, env, 0, c.sessions, redactions); err != nil {
		return err
	}
	if err := seedSessions(ctx, small, 0, c.sessions/10, 0); err != nil {
		return err
	}
	seeded := time.Since(seedStart)
	logf("seeded %d sessions in %s (%.0f sessions/s)", c.sessions+c.sessions/10, seeded.Round(time.Millisecond),
		float64(c.sessions+c.sessions/10)/seeded.Seconds())
	bytesPer, err := env.bytesPerSession(ctx, c.sessions)
	if err != nil {
		return err
	}
	if c.cpuProfile != "" && !c.hold {
		stop, err := startCPUProfile(c.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	var rows []benchRow
	if !c.listOnly {
		logf("measuring the asynq no-op baseline with %d tasks", c.noopTasks)
		noop, err := env.noopThroughput(ctx, c.noopTasks, c.concurrency)
		if err != nil {
			return err
		}
		logf("redacting %d sessions one call at a time", c.redactions)
		single, answered, err := env.singleRedactions(ctx, c.redactions, c.concurrency)
		if err != nil {
			return err
		}
		logf("redacting %d sessions with one bulk job", c.redactions)
		bulk, err := env.bulkRedaction(ctx, c.redactions, c.concurrency)
		if err != nil {
			return err
		}
		logf("measuring the Redis I/O floor of a bulk redaction over %d sessions", c.redactions)
		floor, err := env.redactionIOFloor(ctx, c.redactions, c.concurrency)
		if err != nil {
			return err
		}
		rows = append(rows,
			benchRow{"(a) asynq no-op tasks/s", fmt.Sprintf("%.0f", noop), fmt.Sprintf("%d tasks, concurrency %d", c.noopTasks, c.concurrency)},
			benchRow{"(b) single-session redactions/s", fmt.Sprintf("%.0f", single), fmt.Sprintf("(b)/(a) = %.2f; request → redacted; redact calls answered at %.0f/s", single/noop, answered)},
			benchRow{"(c) bulk redaction sessions/s", fmt.Sprintf("%.0f", bulk), fmt.Sprintf("(c)/(a) = %.2f; one job, job created → completed", bulk/noop)},
			benchRow{"(c) Redis I/O floor sessions/s", fmt.Sprintf("%.0f", floor), fmt.Sprintf("floor/(a) = %.2f; a redaction's reads and writes alone, no CPU work: the ceiling of (c)", floor/noop)})
	}
	logf("list load at %d and %d sessions", c.sessions/10, c.sessions)
	l1, err := small.listLoad(ctx, c.listClients, c.listDuration)
	if err != nil {
		return err
	}
	l2, err := env.listLoad(ctx, c.listClients, c.listDuration)
	if err != nil {
		return err
	}
	var reads readCost
	if !c.listOnly {
		logf("listing a %d-session account from %d clients for %s, then redacting listed and unlisted sessions", readSessions,
			c.readClients, c.readDuration)
		if reads, err = env.measureReadCost(ctx, readKey, c.readClients, c.readDuration); err != nil {
			return err
		}
	}
	rows = append(rows, []benchRow{
		{fmt.Sprintf("(d) list req/s at %d sessions", c.sessions/10), fmt.Sprintf("%.0f", l1.rps), fmt.Sprintf("p50 %s, p99 %s", ms(l1.p50), ms(l1.p99))},
		{fmt.Sprintf("(d) list req/s at %d sessions", c.sessions), fmt.Sprintf("%.0f", l2.rps), fmt.Sprintf("p50 %s, p99 %s; p50 ratio %.2f", ms(l2.p50), ms(l2.p99), float64(l2.p50)/float64(l1.p50))},
		{"(e) Redis bytes per verified session", fmt.Sprintf("%.0f", bytesPer), "MEMORY USAGE of the account's keys ÷ sessions (report, 3 events, 3 request logs)"},
	}...)
	if !c.listOnly {
		rows = append(rows,
			benchRow{"(e) Redis bytes per list call", fmt.Sprintf("%.0f", reads.bytesPerCall), fmt.Sprintf("limit=10, %d calls from %d clients", reads.calls, c.readClients)},
			benchRow{"(e) redaction read ÷ unread", fmt.Sprintf("%.2f", float64(reads.read)/float64(reads.unread)),
				fmt.Sprintf("the worker's redaction, median of %d each: %s for a session on all %d pages, %s for one on none", reads.redactedPairs, ms(reads.read), reads.calls, ms(reads.unread))})
	}
	w := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "measure\tvalue\tnote")
	fmt.Fprintln(w, "-------\t-----\t----")
	for _, r := range rows {
		fmt.Fprintf(w, "%s\t%s\t%s\n", r.name, r.value, r.note)
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if !c.hold {
		return nil
	}
	// The lines below are read by deploy/bench/wrk-list.sh: keep their shape.
	fmt.Fprintf(stdout, "hold: api %s\n", env.apiURL)
	fmt.Fprintf(stdout, "hold: key %s sessions %d\n", env.key, c.sessions)
	fmt.Fprintf(stdout, "hold: key %s sessions %d\n", small.key, c.sessions/10)
	fmt.Fprintf(stdout, "hold: ready; SIGINT or SIGTERM cleans up and exits\n")
	if f, ok := stdout.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	if c.cpuProfile != "" { // with --hold, the profile covers the outside load, not the measurements above
		stop, err := startCPUProfile(c.cpuProfile)
		if err != nil {
			return err
		}
		defer stop()
	}
	<-ctx.Done()
	logf("cleaning up")
	return nil
}

// startCPUProfile writes a CPU profile to path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d.Microseconds())/1000) }

// startAPI serves the real API handler on a loopback port.
func (env *benchEnv) startAPI(keyList ...api.APIKey) (stop func(), err error) {
	keys, err := api.NewKeyring(keyList)
	if err != nil {
		return nil, err
	}
	client := &worker.Client{Asynq: asynq.NewClientFromRedisClient(env.rdb), Queues: env.queues}
	srv := api.NewServer(api.Config{Store: env.st, Keys: keys, Queue: client,
		Emitter: &events.Emitter{Metrics: env.metrics, Fanout: countRedacted{env}}, Metrics: env.metrics,
		Logger: slog.New(slog.DiscardHandler)})
	env.seeder = api.NewServer(api.Config{Store: env.st, Keys: keys, Queue: dropTasks{},
		Emitter: &events.Emitter{Metrics: env.metrics}, Metrics: env.metrics,
		Logger: slog.New(slog.DiscardHandler)})
	ln, err := net.Listen("tcp", "127.0.0.1:0") //nolint:noctx // binding a local address does not wait on the network
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	env.apiURL = "http://" + ln.Addr().String()
	return func() { _ = hs.Close() }, nil
}

// cleanupPrefix deletes the run's store keys and asynq queues.
func cleanupPrefix(ctx context.Context, rdb redis.UniversalClient, tag string) {
	for _, pattern := range []string{tag + ":*", "asynq:{" + tag + "-*"} {
		iter := rdb.Scan(ctx, 0, pattern, 2000).Iterator()
		var batch []string
		for iter.Next(ctx) {
			batch = append(batch, iter.Val())
			if len(batch) >= 1000 {
				rdb.Unlink(ctx, batch...)
				batch = batch[:0]
			}
		}
		if len(batch) > 0 {
			rdb.Unlink(ctx, batch...)
		}
	}
	queues := make([]any, 0, 4)
	for _, q := range []string{"-redact", "-verify", "-default", "-bench"} {
		queues = append(queues, tag+q)
	}
	rdb.SRem(ctx, "asynq:queues", queues...)
}

// bytesPerSession is the account's MEMORY USAGE ÷ n.
func (env *benchEnv) bytesPerSession(ctx context.Context, n int) (float64, error) {
	total, err := env.accountBytes(ctx)
	return float64(total) / float64(n), err
}

// accountBytes sums MEMORY USAGE over the account's keys.
func (env *benchEnv) accountBytes(ctx context.Context) (int64, error) {
	var total int64
	iter := env.rdb.Scan(ctx, 0, env.st.Prefix()+":{"+env.scope.Account+"}:*", 2000).Iterator()
	var batch []string
	flush := func() error {
		pipe := env.rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(batch))
		for i, k := range batch {
			cmds[i] = pipe.MemoryUsage(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for _, c := range cmds {
			total += c.Val()
		}
		batch = batch[:0]
		return nil
	}
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := iter.Err(); err != nil {
		return 0, err
	}
	if err := flush(); err != nil {
		return 0, err
	}
	return total, nil
}

func eventsEmitter(env *benchEnv) *events.Emitter {
	return &events.Emitter{Metrics: env.metrics, Fanout: countRedacted{env}}
}
