package worker

import (
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
)

// Queue metric descriptors. The names and labels are those of asynq's own x/metrics collector (and what
// asynqmon's Prometheus graphs query), so dashboards built for asynq work unchanged.
var (
	queueTasksDesc = prometheus.NewDesc("asynq_tasks_enqueued_total",
		"Tasks in a queue right now, by state (a gauge, named as asynq names it).", []string{"queue", "state"}, nil)
	queueSizeDesc = prometheus.NewDesc("asynq_queue_size",
		"Tasks in a queue (pending, active, scheduled, retry, aggregating and archived).", []string{"queue"}, nil)
	queueLatencyDesc = prometheus.NewDesc("asynq_queue_latency_seconds",
		"How long the oldest pending task of a queue has waited.", []string{"queue"}, nil)
	queueMemoryDesc = prometheus.NewDesc("asynq_queue_memory_usage_approx_bytes",
		"Approximate Redis memory used by a queue (sampled).", []string{"queue"}, nil)
	queueProcessedDesc = prometheus.NewDesc("asynq_tasks_processed_total",
		"Tasks processed by a queue (succeeded and failed), cumulative.", []string{"queue"}, nil)
	queueFailedDesc = prometheus.NewDesc("asynq_tasks_failed_total",
		"Tasks of a queue whose run failed, cumulative.", []string{"queue"}, nil)
	queuePausedDesc = prometheus.NewDesc("asynq_queue_paused_total",
		"1 while a queue is paused.", []string{"queue"}, nil)
	queueStatsUpDesc = prometheus.NewDesc("identityd_queue_stats_up",
		"1 when the last read of the queue statistics from Redis worked.", nil, nil)
	queueStatsAgeDesc = prometheus.NewDesc("identityd_queue_stats_age_seconds",
		"Age of the cached queue statistics served by this scrape.", nil, nil)
)

// QueueCollector exports depth, latency and throughput of identityd's asynq queues. Reading them costs a few
// Redis round trips per queue, so the result is cached for TTL: however often /metrics is scraped, Redis sees
// at most one read per TTL (failures are cached too, so a struggling Redis is not hammered either).
type QueueCollector struct {
	inspector *asynq.Inspector
	queues    []string
	ttl       time.Duration
	now       func() time.Time
	log       *slog.Logger

	mu      sync.Mutex
	fetched time.Time
	infos   []*asynq.QueueInfo
	err     error
}

// QueueCollectorConfig configures NewQueueCollector.
type QueueCollectorConfig struct {
	// TTL is how long one read of the statistics is served (default 5s).
	TTL time.Duration
	// Now tells the time (default time.Now); tests inject a fake clock.
	Now    func() time.Time
	Logger *slog.Logger
}

// NewQueueCollector returns a collector for queues, read through inspector.
func NewQueueCollector(inspector *asynq.Inspector, queues Queues, cfg QueueCollectorConfig) *QueueCollector {
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	names := queues.Names()
	sort.Strings(names)
	return &QueueCollector{inspector: inspector, queues: names, ttl: cfg.TTL, now: cfg.Now, log: cfg.Logger}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueTasksDesc, queueSizeDesc, queueLatencyDesc, queueMemoryDesc,
		queueProcessedDesc, queueFailedDesc, queuePausedDesc, queueStatsUpDesc, queueStatsAgeDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	infos, fetched, err := c.snapshot()
	ch <- prometheus.MustNewConstMetric(queueStatsAgeDesc, prometheus.GaugeValue, c.now().Sub(fetched).Seconds())
	if err != nil {
		ch <- prometheus.MustNewConstMetric(queueStatsUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueStatsUpDesc, prometheus.GaugeValue, 1)
	for _, info := range infos {
		q := info.Queue
		for _, s := range []struct {
			state string
			n     int
		}{{"pending", info.Pending}, {"active", info.Active}, {"scheduled", info.Scheduled}, {"retry", info.Retry},
			{"archived", info.Archived}, {"completed", info.Completed}, {"aggregating", info.Aggregating}} {
			ch <- prometheus.MustNewConstMetric(queueTasksDesc, prometheus.GaugeValue, float64(s.n), q, s.state) //nolint:promlinter // asynq's name for this gauge
		}
		ch <- prometheus.MustNewConstMetric(queueSizeDesc, prometheus.GaugeValue, float64(info.Size), q)
		ch <- prometheus.MustNewConstMetric(queueLatencyDesc, prometheus.GaugeValue, info.Latency.Seconds(), q)
		ch <- prometheus.MustNewConstMetric(queueMemoryDesc, prometheus.GaugeValue, float64(info.MemoryUsage), q)
		ch <- prometheus.MustNewConstMetric(queueProcessedDesc, prometheus.CounterValue, float64(info.ProcessedTotal), q)
		ch <- prometheus.MustNewConstMetric(queueFailedDesc, prometheus.CounterValue, float64(info.FailedTotal), q)
		paused := 0.0
		if info.Paused {
			paused = 1
		}
		ch <- prometheus.MustNewConstMetric(queuePausedDesc, prometheus.GaugeValue, paused, q) //nolint:promlinter // asynq's name for this gauge
	}
}

// snapshot returns the cached statistics, reading them again once they are older than the TTL. Concurrent
// scrapes wait for the one read in progress instead of starting their own.
func (c *QueueCollector) snapshot() ([]*asynq.QueueInfo, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if !c.fetched.IsZero() && now.Sub(c.fetched) < c.ttl {
		return c.infos, c.fetched, c.err
	}
	infos, err := c.read()
	if err != nil {
		c.log.Warn("queue statistics unavailable", "err", err)
		infos = nil
	}
	c.fetched, c.infos, c.err = now, infos, err
	return infos, now, err
}

func (c *QueueCollector) read() ([]*asynq.QueueInfo, error) {
	known, err := c.inspector.Queues()
	if err != nil {
		return nil, fmt.Errorf("list queues: %w", err)
	}
	infos := make([]*asynq.QueueInfo, 0, len(c.queues))
	for _, q := range c.queues {
		if !slices.Contains(known, q) {
			// asynq registers a queue with its first task; until then it is empty, not missing.
			infos = append(infos, &asynq.QueueInfo{Queue: q})
			continue
		}
		info, err := c.inspector.GetQueueInfo(q)
		if err != nil {
			return nil, fmt.Errorf("queue %s: %w", q, err)
		}
		infos = append(infos, info)
	}
	return infos, nil
}
