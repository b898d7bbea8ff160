package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

	"github.com/identityd/identityd/events"
	"github.com/identityd/identityd/store"
)

// maxEndpoints is how many webhook endpoints one account and mode may have (Stripe's limit); it also
// bounds the work of fanning out one event.
const maxEndpoints = 16

// endpointCreated is the create response: the only one that shows the signing secret.
type endpointCreated struct {
	*store.WebhookEndpoint
	Secret string `json:"secret"`
}

// deletedObject is Stripe's answer to a DELETE.
type deletedObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Deleted bool   `json:"deleted"`
}

// readEndpointURL reads url: an absolute http or https URL whose host, when it is an IP address, is one
// deliveries may connect to (a name is checked on every delivery, against the address it resolves to).
func (s *Server) readEndpointURL(f *Form) (*string, error) {
	raw, err := f.String("url")
	if err != nil || raw == nil {
		return nil, err
	}
	u, err := url.Parse(*raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, invalidParam("url", "url_invalid", "Invalid URL: must be an absolute http or https URL.")
	}
	if refused, ok := errors.AsType[*events.RefusedAddressError](s.cfg.WebhookAddresses.CheckHost(u.Hostname())); ok {
		return nil, invalidParam("url", "url_invalid", "Invalid URL: "+refused.Error()+
			"; use a public address, or ask the operator to allow this range for webhooks.")
	}
	return raw, nil
}

// readEnabledEvents reads enabled_events[]: a non-empty list of event types identityd emits, or "*".
func readEnabledEvents(f *Form) ([]string, bool, error) {
	list, found, err := f.Values("enabled_events")
	if err != nil || !found {
		return nil, found, err
	}
	if len(list) == 0 {
		return nil, true, invalidParam("enabled_events", "parameter_invalid", "Invalid enabled_events: must not be empty.")
	}
	var out []string
	for _, t := range list {
		if !events.ValidEventType(t) {
			return nil, true, invalidParam("enabled_events", "parameter_invalid",
				"Invalid enabled_events: identityd emits identity.verification_session.* events only; use * for all of them.")
		}
		if !contains(out, t) {
			out = append(out, t)
		}
	}
	return out, true, nil
}

// readDescription reads description; an empty value means none.
func readDescription(f *Form) (desc *string, sent bool, err error) {
	_, sent = f.Value("description")
	if desc, err = f.String("description"); err != nil || desc == nil || *desc != "" {
		return desc, sent, err
	}
	return nil, sent, nil
}

func (s *Server) createWebhookEndpoint(c *call) (any, error) {
	f := c.form
	var p store.EndpointCreate
	u, err := s.readEndpointURL(f)
	if err != nil {
		return nil, err
	}
	if u == nil {
		return nil, missingParam("url")
	}
	p.URL = *u
	var found bool
	if p.EnabledEvents, found, err = readEnabledEvents(f); err != nil {
		return nil, err
	}
	if !found {
		return nil, missingParam("enabled_events")
	}
	if p.Description, _, err = readDescription(f); err != nil {
		return nil, err
	}
	if p.Metadata, err = f.CreateMetadata(); err != nil {
		return nil, err
	}
	if p.APIVersion, err = s.readAPIVersion(f); err != nil {
		return nil, err
	}
	if connect, err := f.Bool("connect"); err != nil {
		return nil, err
	} else if connect != nil && *connect {
		return nil, invalidParam("connect", "parameter_invalid", "Connect webhook endpoints are not supported.")
	}
	if _, err := readExpand(f, false); err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	n, err := s.cfg.Store.CountEndpoints(c.ctx, c.scope)
	if err != nil {
		return nil, err
	}
	if n >= maxEndpoints {
		return nil, invalidParam("url", "parameter_invalid", "You have reached the maximum of 16 webhook endpoints.")
	}
	secret := events.NewSecret()
	ep, err := s.cfg.Store.CreateEndpoint(c.ctx, c.scope, p, secret)
	if err != nil {
		return nil, err
	}
	c.name(ep.ID)
	// The response shows the secret once; the request log and the idempotency cache keep it without.
	if c.storedBody, err = json.Marshal(ep); err != nil {
		return nil, err
	}
	return &endpointCreated{WebhookEndpoint: ep, Secret: secret}, nil
}

// replayBody puts the signing secret back into a replayed response that showed one (a create or a roll):
// the cached copy never holds it, and a client that retries a call whose answer it lost still needs the
// secret. The replay shows the endpoint's current secret; if the endpoint was deleted since, the secret is
// gone with it and the replay shows none.
func (s *Server) replayBody(c *call, body []byte) []byte {
	if c.r.Method != http.MethodPost || (c.r.URL.Path != "/v1/webhook_endpoints" && !isRollSecretPath(c.r.URL.Path)) {
		return body
	}
	var ep store.WebhookEndpoint
	if json.Unmarshal(body, &ep) != nil || ep.Object != "webhook_endpoint" || ep.ID == "" {
		return body
	}
	_, secret, err := s.cfg.Store.EndpointSecret(c.ctx, c.scope, ep.ID)
	if err != nil {
		return body
	}
	out, err := json.Marshal(&endpointCreated{WebhookEndpoint: &ep, Secret: secret})
	if err != nil {
		return body
	}
	return out
}

func (s *Server) retrieveWebhookEndpoint(c *call) (any, error) {
	if _, err := readExpand(c.form, false); err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	ep, err := s.cfg.Store.GetEndpoint(c.ctx, c.scope, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	c.touch(ep.ID)
	return ep, nil
}

func (s *Server) updateWebhookEndpoint(c *call) (any, error) {
	f := c.form
	u, err := s.readEndpointURL(f)
	if err != nil {
		return nil, err
	}
	enabled, _, err := readEnabledEvents(f)
	if err != nil {
		return nil, err
	}
	desc, descSent, err := readDescription(f)
	if err != nil {
		return nil, err
	}
	md, clearMD, err := f.Metadata()
	if err != nil {
		return nil, err
	}
	disabled, err := f.Bool("disabled")
	if err != nil {
		return nil, err
	}
	if _, err := readExpand(f, false); err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	ep, err := s.cfg.Store.UpdateEndpoint(c.ctx, c.scope, c.r.PathValue("id"), func(ep *store.WebhookEndpoint) error {
		if u != nil {
			ep.URL = *u
		}
		if enabled != nil {
			ep.EnabledEvents = enabled
		}
		if descSent {
			ep.Description = desc
		}
		if clearMD || ep.Metadata == nil {
			ep.Metadata = map[string]string{}
		}
		for k, v := range md {
			if v == "" {
				delete(ep.Metadata, k)
			} else {
				ep.Metadata[k] = v
			}
		}
		if len(ep.Metadata) > maxMetadataKeys {
			return invalidParam("metadata", "parameter_invalid", "Invalid metadata: at most 50 keys.")
		}
		// Disabling an endpoint that is disabled already keeps the record of why identityd disabled it.
		if disabled != nil && (!*disabled || ep.Status != store.EndpointDisabled) {
			status := store.EndpointEnabled
			if *disabled {
				status = store.EndpointDisabled
			}
			ep.SetStatus(status, "", 0)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.touch(ep.ID)
	return ep, nil
}

func (s *Server) deleteWebhookEndpoint(c *call) (any, error) {
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	id := c.r.PathValue("id")
	if err := s.cfg.Store.DeleteEndpoint(c.ctx, c.scope, id); err != nil {
		return nil, err
	}
	c.touch(id)
	return &deletedObject{ID: id, Object: "webhook_endpoint", Deleted: true}, nil
}

func (s *Server) listWebhookEndpoints(c *call) (any, error) {
	page, err := readPage(c.form)
	if err != nil {
		return nil, err
	}
	if page.Created != (store.CreatedRange{}) {
		return nil, unknownParam("created")
	}
	if _, err := readExpand(c.form, true); err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	eps, hasMore, err := s.cfg.Store.ListEndpoints(c.ctx, c.scope, page)
	if err != nil {
		return nil, listError(err, "webhook endpoint", page)
	}
	for _, ep := range eps {
		c.touch(ep.ID)
	}
	return newList("/v1/webhook_endpoints", eps, hasMore), nil
}

// listWebhookAttempts lists an endpoint's delivery attempts, newest first (identityd extension); `event`
// keeps one event's attempts.
func (s *Server) listWebhookAttempts(c *call) (any, error) {
	page, err := readPage(c.form)
	if err != nil {
		return nil, err
	}
	if page.Created != (store.CreatedRange{}) {
		return nil, unknownParam("created")
	}
	event, err := c.form.ObjectID("event")
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	id := c.r.PathValue("id")
	if _, err := s.cfg.Store.GetEndpoint(c.ctx, c.scope, id); err != nil {
		return nil, err
	}
	eventID := ""
	if event != nil {
		eventID = *event
	}
	as, hasMore, err := s.cfg.Store.ListAttempts(c.ctx, c.scope, id, eventID, page)
	if err != nil {
		return nil, listError(err, "webhook attempt", page)
	}
	c.touch(id)
	return newList("/v1/webhook_endpoints/"+id+"/attempts", as, hasMore), nil
}
