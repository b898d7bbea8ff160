package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Webhook endpoint statuses.
const (
	EndpointEnabled  = "enabled"
	EndpointDisabled = "disabled"
)

// WebhookEndpoint is a Stripe webhook endpoint as every response shows it. It has no secret field on
// purpose: the signing secret is kept only in the endpoint's own record (endpointRecord) and is returned
// once, by the create call, which adds it itself.
type WebhookEndpoint struct {
	ID            string            `json:"id"`
	Object        string            `json:"object"`
	APIVersion    *string           `json:"api_version"`
	Application   *string           `json:"application"`
	Created       int64             `json:"created"`
	Description   *string           `json:"description"`
	EnabledEvents []string          `json:"enabled_events"`
	Livemode      bool              `json:"livemode"`
	Metadata      map[string]string `json:"metadata"`
	Status        string            `json:"status"`
	URL           string            `json:"url"`
	// DisabledReason and DisabledAt (identityd extensions) say why and when (unix) identityd disabled the
	// endpoint itself; both are null while it is enabled or when its owner disabled it.
	DisabledReason *string `json:"disabled_reason"`
	DisabledAt     *int64  `json:"disabled_at"`
}

// Reasons identityd records when it disables an endpoint itself.
const (
	// DisabledDeliveryFailed: a delivery failed its last attempt.
	DisabledDeliveryFailed = "delivery_failed"
)

// SetStatus sets the endpoint's status; reason and at record why and when identityd disabled it, and are
// cleared by any other change of status (re-enabling, or a disable by its owner).
func (ep *WebhookEndpoint) SetStatus(status, reason string, at int64) {
	ep.Status = status
	ep.DisabledReason, ep.DisabledAt = nil, nil
	if status == EndpointDisabled && reason != "" {
		ep.DisabledReason, ep.DisabledAt = &reason, &at
	}
}

// endpointRecord is an endpoint as stored, with its signing secret and, after a roll, the secret it
// replaced while that one still signs.
type endpointRecord struct {
	WebhookEndpoint
	Secret string `json:"secret"`
	// PreviousSecret signs deliveries beside Secret until PreviousExpires (unix seconds, exclusive).
	PreviousSecret  string `json:"previous_secret,omitempty"`
	PreviousExpires int64  `json:"previous_expires,omitempty"`
}

// signingSecrets returns the secrets that sign a delivery made at now, the current one first.
func (r *endpointRecord) signingSecrets(now time.Time) []string {
	if r.PreviousSecret != "" && now.Unix() < r.PreviousExpires {
		return []string{r.Secret, r.PreviousSecret}
	}
	return []string{r.Secret}
}

// dropExpiredSecret forgets a previous secret whose overlap is over.
func (r *endpointRecord) dropExpiredSecret(now time.Time) {
	if now.Unix() >= r.PreviousExpires {
		r.PreviousSecret, r.PreviousExpires = "", 0
	}
}

// EndpointCreate holds the validated parameters of a create call.
type EndpointCreate struct {
	URL           string
	EnabledEvents []string
	Description   *string
	Metadata      map[string]string
	APIVersion    *string
}

// CreateEndpoint stores a new enabled endpoint signed with secret.
func (s *Store) CreateEndpoint(ctx context.Context, sc Scope, p EndpointCreate, secret string) (*WebhookEndpoint, error) {
	ep := WebhookEndpoint{ID: NewID("we"), Object: "webhook_endpoint", APIVersion: p.APIVersion,
		Created: s.clock.Now().Unix(), Description: p.Description, EnabledEvents: p.EnabledEvents,
		Livemode: sc.Livemode, Metadata: p.Metadata, Status: EndpointEnabled, URL: p.URL}
	if ep.Metadata == nil {
		ep.Metadata = map[string]string{}
	}
	body, err := json.Marshal(endpointRecord{WebhookEndpoint: ep, Secret: secret})
	if err != nil {
		return nil, err
	}
	_, err = s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Set(ctx, s.endpointKey(sc, ep.ID), body, 0)
		pipe.ZAdd(ctx, s.endpointIndexKey(sc), redis.Z{Member: indexMember(ep.Created, ep.ID)})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("create webhook endpoint: %w", err)
	}
	return &ep, nil
}

func (s *Store) getEndpointRecord(ctx context.Context, rdb redis.Cmdable, sc Scope, id string) (*endpointRecord, error) {
	body, err := rdb.Get(ctx, s.endpointKey(sc, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get webhook endpoint: %w", err)
	}
	var rec endpointRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return nil, fmt.Errorf("decode webhook endpoint %s: %w", id, err)
	}
	return &rec, nil
}

// GetEndpoint loads one endpoint (without its secret).
func (s *Store) GetEndpoint(ctx context.Context, sc Scope, id string) (*WebhookEndpoint, error) {
	rec, err := s.getEndpointRecord(ctx, s.rdb, sc, id)
	if err != nil {
		return nil, err
	}
	return &rec.WebhookEndpoint, nil
}

// EndpointSecret returns an endpoint together with its signing secret, for signing deliveries.
func (s *Store) EndpointSecret(ctx context.Context, sc Scope, id string) (*WebhookEndpoint, string, error) {
	rec, err := s.getEndpointRecord(ctx, s.rdb, sc, id)
	if err != nil {
		return nil, "", err
	}
	return &rec.WebhookEndpoint, rec.Secret, nil
}

// SigningSecrets returns an endpoint with the secrets that sign a delivery made now: its secret first and,
// during the overlap after a roll, the secret it replaced.
func (s *Store) SigningSecrets(ctx context.Context, sc Scope, id string) (*WebhookEndpoint, []string, error) {
	rec, err := s.getEndpointRecord(ctx, s.rdb, sc, id)
	if err != nil {
		return nil, nil, err
	}
	return &rec.WebhookEndpoint, rec.signingSecrets(s.clock.Now()), nil
}

// UpdateEndpoint changes an endpoint atomically: fn edits it in place (an error aborts with nothing written).
// The secret is kept as it is.
func (s *Store) UpdateEndpoint(ctx context.Context, sc Scope, id string, fn func(*WebhookEndpoint) error) (*WebhookEndpoint, error) {
	return s.updateEndpointRecord(ctx, sc, id, func(rec *endpointRecord) error { return fn(&rec.WebhookEndpoint) })
}

// RollEndpointSecret makes secret the endpoint's signing secret. The secret it replaces keeps signing
// deliveries beside it for overlap (none when overlap is 0); a secret replaced by an earlier roll stops at
// once, so at most two secrets sign.
func (s *Store) RollEndpointSecret(ctx context.Context, sc Scope, id, secret string, overlap time.Duration) (*WebhookEndpoint, error) {
	now := s.clock.Now()
	return s.updateEndpointRecord(ctx, sc, id, func(rec *endpointRecord) error {
		rec.PreviousSecret, rec.PreviousExpires = "", 0
		if overlap > 0 {
			rec.PreviousSecret, rec.PreviousExpires = rec.Secret, now.Add(overlap).Unix()
		}
		rec.Secret = secret
		return nil
	})
}

// updateEndpointRecord changes an endpoint's record atomically: fn edits it in place (an error aborts with
// nothing written). A previous secret whose overlap is over is dropped on the way.
func (s *Store) updateEndpointRecord(ctx context.Context, sc Scope, id string, fn func(*endpointRecord) error) (*WebhookEndpoint, error) {
	key := s.endpointKey(sc, id)
	var out *WebhookEndpoint
	err := s.watchRetry(ctx, func(tx *redis.Tx) error {
		rec, err := s.getEndpointRecord(ctx, tx, sc, id)
		if err != nil {
			return err
		}
		rec.dropExpiredSecret(s.clock.Now())
		if err := fn(rec); err != nil {
			return err
		}
		body, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if _, err := tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
			pipe.Set(ctx, key, body, 0)
			return nil
		}); err != nil {
			return err
		}
		out = &rec.WebhookEndpoint
		return nil
	}, key)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteEndpoint removes an endpoint and its attempt index (the attempt records expire on their own).
// Deliveries still queued for it are dropped when they next run.
func (s *Store) DeleteEndpoint(ctx context.Context, sc Scope, id string) error {
	ep, err := s.GetEndpoint(ctx, sc, id)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.Del(ctx, s.endpointKey(sc, id), s.endpointAttemptsKey(sc, id))
		pipe.ZRem(ctx, s.endpointIndexKey(sc), indexMember(ep.Created, id))
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete webhook endpoint: %w", err)
	}
	return nil
}

func (s *Store) loadEndpoints(ctx context.Context, sc Scope, ids []string) ([]*WebhookEndpoint, error) {
	recs, err := mget[endpointRecord](ctx, s, ids, func(id string) string { return s.endpointKey(sc, id) })
	if err != nil {
		return nil, err
	}
	out := make([]*WebhookEndpoint, len(recs))
	for i, r := range recs {
		if r != nil {
			out[i] = &r.WebhookEndpoint
		}
	}
	return out, nil
}

// ListEndpoints returns a page of endpoints, newest first.
func (s *Store) ListEndpoints(ctx context.Context, sc Scope, p Page) ([]*WebhookEndpoint, bool, error) {
	cursor, err := s.cursorMember(p, func(id string) (int64, error) {
		ep, err := s.GetEndpoint(ctx, sc, id)
		if err != nil {
			return 0, err
		}
		return ep.Created, nil
	})
	if err != nil {
		return nil, false, err
	}
	return listFiltered(ctx, s, s.endpointIndexKey(sc), p, cursor, func(ctx context.Context, ids []string) ([]*WebhookEndpoint, error) {
		return s.loadEndpoints(ctx, sc, ids)
	}, nil)
}

// Endpoints returns every endpoint of the scope (Stripe allows few per account), oldest first.
func (s *Store) Endpoints(ctx context.Context, sc Scope) ([]*WebhookEndpoint, error) {
	members, err := s.rdb.ZRange(ctx, s.endpointIndexKey(sc), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = memberID(m)
	}
	eps, err := s.loadEndpoints(ctx, sc, ids)
	if err != nil {
		return nil, err
	}
	out := eps[:0]
	for _, ep := range eps {
		if ep != nil {
			out = append(out, ep)
		}
	}
	return out, nil
}

// endpointIDs returns the ids of every endpoint of the scope.
func (s *Store) endpointIDs(ctx context.Context, sc Scope) ([]string, error) {
	members, err := s.rdb.ZRange(ctx, s.endpointIndexKey(sc), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = memberID(m)
	}
	return ids, nil
}

// CountEndpoints returns how many endpoints the scope has.
func (s *Store) CountEndpoints(ctx context.Context, sc Scope) (int, error) {
	n, err := s.rdb.ZCard(ctx, s.endpointIndexKey(sc)).Result()
	if err != nil {
		return 0, fmt.Errorf("count webhook endpoints: %w", err)
	}
	return int(n), nil
}
