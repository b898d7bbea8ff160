package api

import (
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimiter is a token bucket per API key (golang.org/x/time/rate): rate tokens a second, burst 2×rate but at
// least 1, so a rate below one request every two seconds still lets a request through once its token has
// refilled. Buckets are keyed by a digest of the key, so the limiter holds no secret; time comes from the
// store's clock.
type rateLimiter struct {
	mu      sync.Mutex
	limit   rate.Limit
	burst   int
	now     func() time.Time
	buckets map[[sha256.Size]byte]*rate.Limiter
}

func newRateLimiter(perSecond float64, now func() time.Time) *rateLimiter {
	return &rateLimiter{limit: rate.Limit(perSecond), burst: max(1, int(2*perSecond)), now: now,
		buckets: map[[sha256.Size]byte]*rate.Limiter{}}
}

// allow takes a token from key's bucket and reports whether there was one.
func (l *rateLimiter) allow(key string) bool {
	digest := sha256.Sum256([]byte(key))
	l.mu.Lock()
	b, ok := l.buckets[digest]
	if !ok {
		b = rate.NewLimiter(l.limit, l.burst)
		l.buckets[digest] = b
	}
	l.mu.Unlock()
	return b.AllowN(l.now(), 1)
}
