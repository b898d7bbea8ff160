package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/identityd/identityd/api"
	"github.com/identityd/identityd/store"
	"github.com/identityd/identityd/worker"
)

// readSessions is how many sessions the read-cost account holds: the newest ten are on every listed page, the
// oldest ten on none.
const readSessions = 20

// readCost is the result of the read-cost measurement.
type readCost struct {
	calls         int
	bytesPerCall  float64
	read, unread  time.Duration // median time the worker took to redact a listed and an unlisted session
	redactedPairs int
}

// measureReadCost measures what reading sessions costs their redaction and the store, on an account of its
// own: clients loop on `GET /v1/identity/verification_sessions?limit=10` for d (the newest ten sessions on
// every page), then sessions from the listed and the unlisted half are redacted one at a time, alternately:
// the redact call through the API, then the worker's redaction (Worker.Redact, what the task runs) timed on
// its own, so the queue's polling does not blur the comparison. Redis bytes per list call are the account's
// MEMORY USAGE growth over the listing ÷ the calls.
func (env *benchEnv) measureReadCost(ctx context.Context, key api.APIKey, clients int, d time.Duration) (readCost, error) {
	re := &benchEnv{tag: env.tag, rdb: env.rdb, st: env.st, scope: key.Scope, key: key.Secret, queues: env.queues,
		metrics: env.metrics, apiURL: env.apiURL, seeder: env.seeder}
	var res readCost
	if err := seedSessions(ctx, re, 0, readSessions, 0); err != nil {
		return res, err
	}
	ids, err := re.sessionIDs(ctx, benchRefRest) // newest first
	if err != nil {
		return res, err
	}
	if len(ids) != readSessions {
		return res, fmt.Errorf("read-cost account holds %d sessions, want %d", len(ids), readSessions)
	}
	before, err := re.accountBytes(ctx)
	if err != nil {
		return res, err
	}
	calls, err := re.listFor(ctx, clients, d, re.apiURL+"/v1/identity/verification_sessions?limit=10")
	if err != nil {
		return res, err
	}
	after, err := re.accountBytes(ctx)
	if err != nil {
		return res, err
	}
	res.calls, res.bytesPerCall = calls, float64(after-before)/float64(calls)

	w := &worker.Worker{Store: env.st, Metrics: env.metrics, Emitter: eventsEmitter(env)}
	hc := &http.Client{}
	defer hc.CloseIdleConnections()
	var read, unread []time.Duration
	for i := range readSessions / 2 {
		for _, pick := range []struct {
			id  string
			out *[]time.Duration
		}{{ids[i], &read}, {ids[readSessions-1-i], &unread}} {
			took, err := re.timeRedaction(ctx, hc, w, pick.id)
			if err != nil {
				return res, err
			}
			*pick.out = append(*pick.out, took)
		}
	}
	res.read, res.unread, res.redactedPairs = median(read), median(unread), len(read)
	return res, nil
}

// timeRedaction requests the redaction of one session through the API and returns how long the worker's
// redaction of it took.
func (env *benchEnv) timeRedaction(ctx context.Context, hc *http.Client, w *worker.Worker, id string) (time.Duration, error) {
	if !env.call(ctx, hc, http.MethodPost, env.apiURL+"/v1/identity/verification_sessions/"+url.PathEscape(id)+"/redact") {
		return 0, fmt.Errorf("redact %s failed", id)
	}
	start := time.Now()
	if err := w.Redact(ctx, env.scope, id); err != nil {
		return 0, fmt.Errorf("redact %s: %w", id, err)
	}
	took := time.Since(start)
	sess, err := env.st.GetSession(ctx, env.scope, id)
	if err != nil {
		return 0, err
	}
	if sess.Redaction == nil || sess.Redaction.Status != store.RedactionRedacted {
		return 0, fmt.Errorf("%s not redacted after the worker ran", id)
	}
	return took, nil
}

// listFor runs clients loops of GET u for d and returns how many calls answered 200 (any other answer fails).
func (env *benchEnv) listFor(ctx context.Context, clients int, d time.Duration, u string) (int, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(d)
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				if env.call(ctx, hc, http.MethodGet, u) {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 || ok.Load() == 0 {
		return 0, fmt.Errorf("list load: %d calls failed, %d answered", failed.Load(), ok.Load())
	}
	return int(ok.Load()), nil
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	slices.Sort(s)
	return s[len(s)/2]
}
