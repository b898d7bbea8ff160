package worker

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/store/storetest"
)

func TestQueueCollector(t *testing.T) {
	t.Parallel()
	setup := func(t *testing.T) (*QueueCollector, *storetest.FakeClock, *Client) {
		t.Helper()
		r := storetest.New(t)
		clock := storetest.NewFakeClock(time.Unix(1_700_000_000, 0))
		queues := NewQueues(r.QueuePrefix)
		c := NewQueueCollector(asynq.NewInspectorFromRedisClient(r.Client), queues, QueueCollectorConfig{TTL: 5 * time.Second, Now: clock.Now})
		client := &Client{Asynq: asynq.NewClientFromRedisClient(r.Client), Queues: queues}
		return c, clock, client
	}
	depth := func(t *testing.T, c *QueueCollector, queue, state string) float64 {
		t.Helper()
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		families, err := reg.Gather()
		require.NoError(t, err)
		for _, f := range families {
			if f.GetName() != "asynq_tasks_enqueued_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				labels := map[string]string{}
				for _, l := range m.GetLabel() {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["queue"] == queue && labels["state"] == state {
					return m.GetGauge().GetValue()
				}
			}
		}
		t.Fatalf("no asynq_tasks_enqueued_total{queue=%q,state=%q}", queue, state)
		return 0
	}

	t.Run("EmptyQueuesAreZeroFromStart", func(t *testing.T) {
		t.Parallel()
		c, _, client := setup(t)
		require.Equal(t, 0.0, depth(t, c, client.Queues.Redact, "pending"))
		require.Equal(t, 0.0, depth(t, c, client.Queues.Verify, "scheduled"))
		n, err := testutil.GatherAndCount(registryOf(c), "asynq_queue_size", "asynq_queue_latency_seconds", "identityd_queue_stats_up")
		require.NoError(t, err)
		require.Equal(t, 4+4+1, n, "every queue, the webhook pool's included")
		require.Equal(t, 0.0, depth(t, c, client.Queues.Webhook, "pending"))
	})

	t.Run("CachedForTTL", func(t *testing.T) {
		t.Parallel()
		c, clock, client := setup(t)
		ctx := context.Background()
		sc := store.Scope{Account: "acct_q"}
		require.Equal(t, 0.0, depth(t, c, client.Queues.Redact, "pending"))

		require.NoError(t, client.EnqueueRedact(ctx, sc, "vs_1"))
		require.NoError(t, client.EnqueueRedact(ctx, sc, "vs_2"))
		clock.Advance(4 * time.Second)
		require.Equal(t, 0.0, depth(t, c, client.Queues.Redact, "pending"), "a scrape within the TTL must not read Redis")

		clock.Advance(2 * time.Second)
		require.Equal(t, 2.0, depth(t, c, client.Queues.Redact, "pending"))
	})

	t.Run("RedisDownIsReportedNotFatal", func(t *testing.T) {
		t.Parallel()
		r := storetest.New(t)
		ins := asynq.NewInspectorFromRedisClient(r.Client)
		c := NewQueueCollector(ins, NewQueues(r.QueuePrefix), QueueCollectorConfig{})
		require.NoError(t, r.Client.Close()) // every read now fails
		require.Equal(t, 0.0, testutil.ToFloat64(upOnly{c}))
	})
}

func registryOf(c prometheus.Collector) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	return reg
}

// upOnly exposes just identityd_queue_stats_up, for testutil.ToFloat64.
type upOnly struct{ c *QueueCollector }

func (u upOnly) Describe(ch chan<- *prometheus.Desc) { ch <- queueStatsUpDesc }
func (u upOnly) Collect(ch chan<- prometheus.Metric) {
	all := make(chan prometheus.Metric, 100)
	u.c.Collect(all)
	close(all)
	for m := range all {
		if m.Desc() == queueStatsUpDesc {
			ch <- m
		}
	}
}
