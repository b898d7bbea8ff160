package api

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/identityd/identityd/events"
)

// Overlap of a rolled webhook secret: how long the secret it replaces keeps signing deliveries.
const (
	defaultSecretOverlap = 24 * time.Hour
	maxSecretOverlap     = 7 * 24 * time.Hour
)

// rollSecretSuffix ends the path of the roll call: /v1/webhook_endpoints/{id}/roll_secret.
const rollSecretSuffix = "/roll_secret"

// isRollSecretPath reports whether path is a roll call's.
func isRollSecretPath(path string) bool {
	rest, ok := strings.CutPrefix(path, "/v1/webhook_endpoints/")
	id, roll := strings.CutSuffix(rest, rollSecretSuffix)
	return ok && roll && id != "" && !strings.Contains(id, "/")
}

// readSecretOverlap reads expires_in: whole seconds from 0 (the replaced secret stops now) to seven days;
// absent means a day.
func readSecretOverlap(f *Form) (time.Duration, error) {
	n, err := f.Int("expires_in")
	if err != nil {
		return 0, err
	}
	if n == nil {
		return defaultSecretOverlap, nil
	}
	maxSeconds := int64(maxSecretOverlap / time.Second)
	if *n < 0 || *n > maxSeconds { // compared in seconds: a huge n would overflow a Duration
		return 0, invalidParam("expires_in", "parameter_invalid", "Invalid expires_in: must be a whole number of seconds from 0 to "+
			strconv.FormatInt(maxSeconds, 10)+".")
	}
	return time.Duration(*n) * time.Second, nil
}

// rollWebhookEndpointSecret gives an endpoint a new signing secret (identityd extension). The secret it
// replaces keeps signing deliveries beside the new one for expires_in seconds, so a receiver can switch
// secrets without rejecting a delivery. Like the create call, the answer is the only one that shows the new
// secret; the request log and the idempotency cache keep it without.
func (s *Server) rollWebhookEndpointSecret(c *call) (any, error) {
	overlap, err := readSecretOverlap(c.form)
	if err != nil {
		return nil, err
	}
	if _, err := readExpand(c.form, false); err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	secret := events.NewSecret()
	ep, err := s.cfg.Store.RollEndpointSecret(c.ctx, c.scope, c.r.PathValue("id"), secret, overlap)
	if err != nil {
		return nil, err
	}
	c.touch(ep.ID)
	if c.storedBody, err = json.Marshal(ep); err != nil {
		return nil, err
	}
	return &endpointCreated{WebhookEndpoint: ep, Secret: secret}, nil
}
