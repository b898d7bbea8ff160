package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/identityd/identityd/api"
	"github.com/identityd/identityd/cmd/identityd/bench"
	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/worker"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "dev"

// httpDrainTimeout bounds how long in-flight HTTP requests may finish after SIGTERM; running tasks then get
// worker.DefaultShutdownTimeout. deploy/deploy_test.go checks the grace periods of the manifests against both.
const httpDrainTimeout = 25 * time.Second

// Main is the program: ParseFlags, then Run, then Close.
type Main struct {
	stdout, stderr io.Writer
	role           string
	cfg            *Config
	redact         *redactCommand
	bench          *bench.Command
	health         *healthcheckCommand
	help           string // set when the user asked for help: Run prints it

	mini    *miniredis.Miniredis
	rdb     redis.UniversalClient
	closers []func() error
	// Ready is closed once the listeners are up (tests wait on it); APIAddr/AdminAddr are the bound addresses.
	Ready     chan struct{}
	APIAddr   string
	AdminAddr string
	// Clock, when set before Run, is the store's clock (tests pin `created`); nil means the wall clock.
	Clock store.Clock
	// limits bound the HTTP listeners' clients, redisTimeouts every Redis call (tests change them).
	limits        httpLimits
	redisTimeouts redisTimeouts
}

// NewMain returns a Main writing to stdout and stderr.
func NewMain(stdout, stderr io.Writer) *Main {
	return &Main{stdout: stdout, stderr: stderr, Ready: make(chan struct{}), limits: defaultHTTPLimits,
		redisTimeouts: defaultRedisTimeouts}
}

// ParseFlags picks the subcommand and parses its flags. -h and --help are not errors: Run then prints the
// help. Errors are one line each.
func (m *Main) ParseFlags(args []string) error {
	m.role = "serve"
	explicit := false
	if len(args) > 0 {
		switch a := args[0]; {
		case a == "--version" || a == "-version":
			m.role, args, explicit = "version", args[1:], true
		case a == "help":
			m.help = mainUsage()
			if len(args) > 1 { // `identityd help redact` is `identityd redact --help`
				return m.ParseFlags([]string{args[1], "--help"})
			}
			return nil
		case !strings.HasPrefix(a, "-"):
			m.role, args, explicit = a, args[1:], true
		}
	}
	var err error
	switch m.role {
	case "serve", "api", "worker":
		m.cfg, err = parseDaemonFlags(m.role, args)
		if errors.Is(err, flag.ErrHelp) {
			m.help = daemonUsage(m.role)
			if !explicit {
				m.help = mainUsage()
			}
			return nil
		}
	case "redact":
		m.redact, err = parseRedactFlags(args)
		if errors.Is(err, flag.ErrHelp) {
			m.help = redactHelp()
			return nil
		}
	case "bench":
		var out bytes.Buffer // the flag package writes bench's usage here
		m.bench, err = bench.ParseFlags(args, &out)
		if errors.Is(err, flag.ErrHelp) {
			m.help = out.String()
			return nil
		}
		if err != nil {
			err = flagError(err, "identityd bench")
		}
	case "healthcheck":
		m.health, err = parseHealthcheckFlags(args)
		if errors.Is(err, flag.ErrHelp) {
			m.help = healthcheckHelp()
			return nil
		}
	case "version":
		err = parseFlagSet(flag.NewFlagSet("identityd version", flag.ContinueOnError), args, "identityd version")
		if errors.Is(err, flag.ErrHelp) {
			m.help = "usage: identityd version\n\nPrints the module version, the commit it was built from and the Go version.\n"
			return nil
		}
	default:
		return fmt.Errorf("unknown command %q; see identityd --help", m.role)
	}
	return err
}

// Run runs the subcommand until ctx ends (daemons) or the work is done.
func (m *Main) Run(ctx context.Context) error {
	if m.help != "" {
		fmt.Fprint(m.stdout, m.help)
		return nil
	}
	switch m.role {
	case "version":
		fmt.Fprintln(m.stdout, "identityd", buildVersion())
		return nil
	case "redact":
		return m.redact.run(ctx, m.stdout)
	case "bench":
		return m.bench.Run(ctx, m.stdout)
	case "healthcheck":
		return m.health.run(ctx, m.stdout)
	}
	return m.runDaemon(ctx)
}

// Close releases what Run opened.
func (m *Main) Close() error {
	var errs []error
	for _, v := range slices.Backward(m.closers) {
		errs = append(errs, v())
	}
	m.closers = nil
	return errors.Join(errs...)
}

func (m *Main) logger() *slog.Logger {
	level := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError}[m.cfg.LogLevel]
	opts := &slog.HandlerOptions{Level: level}
	if m.cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(m.stderr, opts))
	}
	return slog.New(slog.NewTextHandler(m.stderr, opts))
}

// connect opens the Redis the process uses: external, cluster, or embedded.
func (m *Main) connect(log *slog.Logger) error {
	quietRedisLogs()
	cfg := m.cfg
	switch {
	case len(cfg.RedisCluster) > 0:
		opt, err := cfg.clusterOptions()
		if err != nil {
			return err
		}
		opt.PoolSize = m.poolSize()
		m.redisTimeouts.applyCluster(opt)
		m.rdb = redis.NewClusterClient(opt)
	case cfg.RedisURL != "":
		opt, err := parseRedisURL(cfg.RedisURL)
		if err != nil {
			return err
		}
		if opt.PoolSize == 0 { // the URL may set pool_size; otherwise size it for the worker pool
			opt.PoolSize = m.poolSize()
		}
		m.redisTimeouts.apply(opt)
		m.rdb = redis.NewClient(opt)
	default:
		mini := miniredis.NewMiniRedis()
		if err := mini.StartAddr("127.0.0.1:0"); err != nil {
			return fmt.Errorf("start embedded redis: %w", err)
		}
		m.mini = mini
		m.closers = append(m.closers, func() error { mini.Close(); return nil })
		stop := advanceMiniredisClock(mini)
		m.closers = append(m.closers, func() error { stop(); return nil })
		opt := &redis.Options{Addr: mini.Addr(), PoolSize: m.poolSize()}
		m.redisTimeouts.apply(opt)
		m.rdb = redis.NewClient(opt)
		log.Warn("EMBEDDED IN-MEMORY REDIS: nothing survives a restart — sessions, events, pending redactions and " +
			"queued jobs are lost when this process exits. Set --redis-url for anything but a trial.")
	}
	rdb := m.rdb
	m.closers = append(m.closers, rdb.Close)
	pingCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pingCtx).Err(); err != nil {
		return m.unreachable(err)
	}
	return nil
}

// poolSize sizes the shared Redis pool: asynq's own connections plus up to two per running task (a handler
// holds its transaction's connection while a pipeline may take another; the webhook pool's tasks too), and room
// for API requests. go-redis's
// default of 10 × GOMAXPROCS is 20 on two cores — as many as the default --concurrency alone.
func (m *Main) poolSize() int {
	return max(10*runtime.GOMAXPROCS(0), 2*(m.cfg.Concurrency+m.cfg.WebhookConcurrency)+32)
}

// advanceMiniredisClock makes the embedded Redis expire keys with real time (miniredis only moves its clock
// when told to).
func advanceMiniredisClock(mini *miniredis.Miniredis) (stop func()) {
	done := make(chan struct{})
	var once sync.Once
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-done:
				return
			case now := <-t.C:
				mini.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	return func() { once.Do(func() { close(done) }) }
}

// resolveKeys applies the key rules: embedded with none → generate one test key (runDaemon prints it once
// the listeners are up); external with none → refuse to start.
func (m *Main) resolveKeys() (generated string, err error) {
	if len(m.cfg.APIKeys) > 0 {
		return "", nil
	}
	if !m.cfg.embedded() {
		return "", errors.New("no API key configured: pass --api-key sk_test_… (or set IDENTITYD_API_KEYS) when using an external Redis")
	}
	key, err := api.ParseAPIKey("sk_test_" + store.RandomString(24))
	if err != nil {
		return "", err
	}
	m.cfg.APIKeys = []api.APIKey{key}
	return key.Secret, nil
}

// listen binds the admin listener and, unless the process is a worker, the public one, before anything
// else starts: a busy port ends the process before it connects to Redis or prints a key.
func (m *Main) listen() (adminLn, apiLn net.Listener, err error) {
	admin, err := listen("admin-addr", m.cfg.AdminAddr, m.limits.AdminMaxConns)
	if err != nil {
		return nil, nil, err
	}
	m.closers = append(m.closers, func() error { _ = admin.Close(); return nil })
	m.AdminAddr = admin.Addr().String()
	if m.role == "worker" {
		return admin, nil, nil
	}
	public, err := listen("addr", m.cfg.Addr, m.limits.MaxConns)
	if err != nil {
		return nil, nil, err
	}
	m.closers = append(m.closers, func() error { _ = public.Close(); return nil })
	m.APIAddr = public.Addr().String()
	return admin, public, nil
}

func (m *Main) runDaemon(ctx context.Context) error {
	cfg := m.cfg
	log := m.logger()
	var generatedKey string
	if m.role != "worker" {
		var err error
		if generatedKey, err = m.resolveKeys(); err != nil {
			return err
		}
	}
	adminLn, apiLn, err := m.listen()
	if err != nil {
		return err
	}
	if err := m.connect(log); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := events.NewMetrics(reg)
	publicURL := cfg.PublicURL
	if publicURL == "" {
		publicURL = "http://" + cfg.Addr
	}
	st := store.New(m.rdb, store.Config{Prefix: cfg.KeyPrefix, PublicURL: publicURL, Clock: m.Clock})
	st.RequestLogTTL = cfg.RequestLogTTL
	emitter := &events.Emitter{Metrics: metrics}
	queues := worker.NewQueues(cfg.QueuePrefix)
	asynqClient := asynq.NewClientFromRedisClient(m.rdb)
	client := &worker.Client{Asynq: asynqClient, Queues: queues, VerificationDelay: cfg.VerificationDelay, RedactionDelay: cfg.RedactionDelay}
	inspector := asynq.NewInspectorFromRedisClient(m.rdb)
	// Webhooks: the API and the worker fan events out to endpoints; the worker makes the deliveries.
	// Deliveries run in a pool of their own (the webhook queue); one account holds at most half of it.
	webhooks := &events.Webhooks{Store: st, Asynq: asynqClient, Queue: queues.Webhook, Backoff: cfg.WebhookBackoff,
		Metrics: metrics, Logger: log, HTTP: events.NewHTTPClient(cfg.WebhookAddresses),
		Limits: events.Limits{EndpointConcurrency: cfg.WebhookEndpointConcurrency, AccountConcurrency: max(cfg.WebhookConcurrency/2, 1)}}
	emitter.Fanout = webhooks
	reg.MustRegister(worker.NewQueueCollector(inspector, queues, worker.QueueCollectorConfig{Logger: log}))
	reg.MustRegister(newFailedRedactionsGauge(st))
	connOpt, err := m.asynqConnOpt()
	if err != nil {
		return err
	}
	dashboard := newDashboard(connOpt, cfg.AdminPassword != "")
	m.closers = append(m.closers, dashboard.Close)
	var draining atomic.Bool

	var servers []*http.Server
	admin := m.limits.newHTTPServer(newAdminHandler(adminConfig{Store: st, Gatherer: reg, Dashboard: dashboard,
		Password: cfg.AdminPassword, Draining: &draining}))
	servers = append(servers, admin)
	go func() { _ = admin.Serve(adminLn) }()

	if m.role != "worker" {
		keys, err := api.NewKeyring(cfg.APIKeys)
		if err != nil {
			return err
		}
		srv := api.NewServer(api.Config{Store: st, Keys: keys, Queue: client, Emitter: emitter, Metrics: metrics,
			Logger: log, RateLimit: cfg.RateLimit, WebhookAddresses: cfg.WebhookAddresses})
		if cfg.PublicURL == "" { // the bound port, when --addr asked for any (":0")
			st.PublicURL = "http://" + m.APIAddr
		}
		hs := m.limits.newHTTPServer(srv)
		servers = append(servers, hs)
		go func() { _ = hs.Serve(apiLn) }()
		log.Info("api listening", "addr", m.APIAddr, "keys", len(cfg.APIKeys))
	}
	var asynqServer, webhookServer *asynq.Server
	var scheduler *asynq.Scheduler
	if m.role != "api" {
		w := &worker.Worker{Store: st, Client: client, Inspector: inspector, Emitter: emitter, Metrics: metrics, Logger: log,
			Webhooks: webhooks, Retention: cfg.Retention}
		serverCfg := worker.ServerConfig{Concurrency: cfg.Concurrency, WebhookConcurrency: cfg.WebhookConcurrency,
			Queues: queues, Logger: log, WebhookBackoff: cfg.WebhookBackoff}
		asynqServer = worker.NewServer(m.rdb, serverCfg)
		if err := asynqServer.Start(w.Mux()); err != nil {
			return fmt.Errorf("start worker: %w", err)
		}
		webhookServer = worker.NewWebhookServer(m.rdb, serverCfg)
		if err := webhookServer.Start(w.Mux()); err != nil {
			asynqServer.Shutdown()
			return fmt.Errorf("start webhook delivery pool: %w", err)
		}
		scheduler = asynq.NewSchedulerFromRedisClient(m.rdb, &asynq.SchedulerOpts{Logger: worker.AsynqLogger(log), LogLevel: asynq.WarnLevel})
		if _, err := scheduler.Register(fmt.Sprintf("@every %s", cfg.ReconcileInterval), asynq.NewTask(worker.TypeReconcile, nil),
			asynq.Queue(queues.Default), asynq.Unique(cfg.ReconcileInterval/2+time.Second), asynq.MaxRetry(0)); err != nil {
			return fmt.Errorf("schedule reconciler: %w", err)
		}
		if cfg.Retention > 0 {
			every := worker.RetentionInterval(cfg.Retention)
			if _, err := scheduler.Register(fmt.Sprintf("@every %s", every), asynq.NewTask(worker.TypeRetention, nil),
				asynq.Queue(queues.Default), asynq.Unique(every/2+time.Second), asynq.MaxRetry(0)); err != nil {
				return fmt.Errorf("schedule retention: %w", err)
			}
		}
		if err := scheduler.Start(); err != nil {
			return fmt.Errorf("start scheduler: %w", err)
		}
		// Recover at once after a restart rather than at the first tick.
		if n, err := w.Reconcile(ctx); err != nil {
			log.Warn("startup reconcile failed", "err", err)
		} else if n > 0 {
			log.Info("startup reconcile re-enqueued redactions", "count", n)
		}
		log.Info("worker started", "concurrency", cfg.Concurrency, "webhook_concurrency", cfg.WebhookConcurrency)
	}
	log.Info("identityd started", "role", m.role, "admin_addr", m.AdminAddr, "version", buildVersion())
	if generatedKey != "" {
		fmt.Fprintf(m.stdout, "identityd: no --api-key given; generated test key (shown once): %s\n", generatedKey)
	}
	close(m.Ready)

	<-ctx.Done()
	draining.Store(true)
	log.Info("shutting down: draining HTTP, finishing running tasks")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), httpDrainTimeout)
	defer cancel()
	for _, server := range slices.Backward(servers) {
		_ = server.Shutdown(shutdownCtx)
	}
	if scheduler != nil {
		scheduler.Shutdown()
	}
	// Both pools finish their running tasks at the same time, within one DefaultShutdownTimeout.
	var pools sync.WaitGroup
	for _, srv := range []*asynq.Server{asynqServer, webhookServer} {
		if srv != nil {
			pools.Go(srv.Shutdown)
		}
	}
	pools.Wait()
	// The asynq client and inspector share m.rdb, which Close releases.
	log.Info("stopped")
	return nil
}
