package store

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// DeliveryLimits bound what one endpoint, and one account, may hold of the webhook delivery pool, and when an
// endpoint that keeps not answering stops being dialled. The state behind them lives in Redis, keyed by
// account and endpoint id only, so every worker process shares it.
type DeliveryLimits struct {
	// EndpointSlots is how many attempts to one endpoint may be in flight at once.
	EndpointSlots int
	// AccountSlots is how many attempts of one account and mode may be in flight at once.
	AccountSlots int
	// Lease is how long a permit lives if it is never released (its holder was killed mid-attempt); it
	// must outlast one attempt.
	Lease time.Duration
	// BreakerThreshold consecutive unreachable attempts (a timeout or a connection failure) open an
	// endpoint's circuit for BreakerCooldown; then one probe attempt is let through (half-open).
	BreakerThreshold int
	BreakerCooldown  time.Duration
}

// AdmitCode says whether an attempt may be made now, and if not, why.
type AdmitCode int

// Admission outcomes.
const (
	// Admitted: dial now.
	Admitted AdmitCode = iota
	// AdmittedProbe: dial now, as the one probe of a circuit whose cool-down has passed.
	AdmittedProbe
	// CircuitOpen: the endpoint kept not answering; do not dial before the cool-down ends.
	CircuitOpen
	// EndpointBusy: the endpoint already has its limit of attempts in flight.
	EndpointBusy
	// AccountBusy: the account already has its limit of attempts in flight.
	AccountBusy
)

// String names the code as logs and metrics show it.
func (c AdmitCode) String() string {
	return [...]string{"admitted", "probe", "circuit_open", "endpoint_busy", "account_busy"}[c]
}

// Admission is the answer of AdmitDelivery. An admitted attempt holds a permit until ReleaseDelivery.
type Admission struct {
	Code AdmitCode
	// Wait is, when not admitted, how long until the reason surely ends: the circuit's cool-down, or the
	// lease of the oldest permit in the way (which its holder usually releases much earlier).
	Wait   time.Duration
	holder string
}

// DialOutcome is what an admitted attempt found, for the circuit breaker.
type DialOutcome string

// Dial outcomes.
const (
	// Answered: the receiver sent a response (any status): it is reachable, the circuit closes.
	Answered DialOutcome = "answered"
	// Unreachable: a timeout or a connection failure; enough in a row open the circuit.
	Unreachable DialOutcome = "unreachable"
	// NotDialled: the attempt was given up before dialling; the breaker is left as it is.
	NotDialled DialOutcome = "none"
)

// admitDelivery takes a permit in both the endpoint's and the account's slots, unless the endpoint's circuit is
// open, a half-open probe is already out, or either set of slots is full. Permits whose lease ended are dropped
// first. It returns {code, wait ms} (codes as AdmitCode).
// KEYS[1] breaker hash, KEYS[2] endpoint slots zset, KEYS[3] account slots zset;
// ARGV[1] now ms, ARGV[2] holder, ARGV[3] lease ms, ARGV[4] endpoint limit, ARGV[5] account limit.
var admitDelivery = redis.NewScript(`
local now = tonumber(ARGV[1])
local lease = tonumber(ARGV[3])
local probe = 0
local open = tonumber(redis.call('HGET', KEYS[1], 'open_until') or '0')
if open > 0 then
  if now < open then return {2, open - now} end
  local out = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
  if now < out then return {2, out - now} end
  probe = 1
end
local limits = {tonumber(ARGV[4]), tonumber(ARGV[5])}
for i = 2, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('ZCARD', KEYS[i]) >= limits[i - 1] then
    local oldest = redis.call('ZRANGE', KEYS[i], 0, 0, 'WITHSCORES')
    return {i + 1, tonumber(oldest[2]) - now}
  end
end
for i = 2, 3 do
  redis.call('ZADD', KEYS[i], now + lease, ARGV[2])
  redis.call('PEXPIRE', KEYS[i], lease)
end
if probe == 1 then redis.call('HSET', KEYS[1], 'probe_until', now + lease) end
return {probe, 0}
`)

// releaseDelivery gives a permit back and feeds the breaker: an answer closes the circuit, an unreachable
// attempt counts towards opening it (a failed probe reopens it at once). It returns 1 when it opened the circuit.
// KEYS as admitDelivery; ARGV[1] now ms, ARGV[2] holder, ARGV[3] outcome, ARGV[4] threshold,
// ARGV[5] cool-down ms, ARGV[6] ttl ms of the breaker's state.
var releaseDelivery = redis.NewScript(`
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
if ARGV[3] == 'answered' then
  redis.call('DEL', KEYS[1])
  return 0
end
if ARGV[3] ~= 'unreachable' then return 0 end
local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
local opened = 0
if fails >= tonumber(ARGV[4]) then
  redis.call('HSET', KEYS[1], 'open_until', tonumber(ARGV[1]) + tonumber(ARGV[5]))
  redis.call('HDEL', KEYS[1], 'probe_until')
  opened = 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return opened
`)

// breakerMemory is how long an endpoint's count of unreachable attempts is kept after the last one.
const breakerMemory = 24 * time.Hour

func (s *Store) slotKeys(sc Scope, endpointID string) []string {
	return []string{s.endpointBreakerKey(sc, endpointID), s.endpointSlotsKey(sc, endpointID), s.accountSlotsKey(sc)}
}

// AdmitDelivery asks whether an attempt to endpointID may be made now. When it is admitted the caller dials
// and then calls ReleaseDelivery with the same Admission; a caller that dies instead leaves a permit that
// lapses after lim.Lease.
func (s *Store) AdmitDelivery(ctx context.Context, sc Scope, endpointID string, lim DeliveryLimits) (Admission, error) {
	holder := RandomString(16)
	res, err := admitDelivery.Run(ctx, s.rdb, s.slotKeys(sc, endpointID), s.clock.Now().UnixMilli(), holder,
		lim.Lease.Milliseconds(), max(lim.EndpointSlots, 1), max(lim.AccountSlots, 1)).Int64Slice()
	if err != nil || len(res) != 2 {
		return Admission{}, fmt.Errorf("admit webhook delivery: %w", err)
	}
	a := Admission{Code: AdmitCode(res[0]), Wait: time.Duration(max(res[1], 0)) * time.Millisecond}
	if a.Code == Admitted || a.Code == AdmittedProbe {
		a.holder = holder
	}
	return a, nil
}

// ReleaseDelivery returns an admitted attempt's permit and records what the attempt found. It reports
// whether this outcome opened the endpoint's circuit.
func (s *Store) ReleaseDelivery(ctx context.Context, sc Scope, endpointID string, a Admission, outcome DialOutcome, lim DeliveryLimits) (bool, error) {
	if a.holder == "" {
		return false, nil
	}
	n, err := releaseDelivery.Run(ctx, s.rdb, s.slotKeys(sc, endpointID), s.clock.Now().UnixMilli(), a.holder,
		string(outcome), max(lim.BreakerThreshold, 1), lim.BreakerCooldown.Milliseconds(),
		(lim.BreakerCooldown + breakerMemory).Milliseconds()).Int()
	if err != nil {
		return false, fmt.Errorf("release webhook delivery: %w", err)
	}
	return n == 1, nil
}

// DeliverySlotsHeld returns how many attempts to endpointID hold a permit now (leases not yet lapsed).
func (s *Store) DeliverySlotsHeld(ctx context.Context, sc Scope, endpointID string) (int, error) {
	n, err := s.rdb.ZCount(ctx, s.endpointSlotsKey(sc, endpointID), fmt.Sprint("(", s.clock.Now().UnixMilli()), "+inf").Result()
	if err != nil {
		return 0, fmt.Errorf("count webhook delivery slots: %w", err)
	}
	return int(n), nil
}
