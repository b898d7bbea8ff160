package api

import (
	"errors"
	"slices"
	"strings"

	"github.com/identityd/identityd/store"
)

func (s *Server) retrieveEvent(c *call) (any, error) {
	if _, err := readExpand(c.form, false); err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	ev, err := s.cfg.Store.GetEvent(c.ctx, c.scope, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	c.touch(ev.ID, ev.ObjectID())
	return ev.In(c.version), nil
}

// retryEvent resends one event to one webhook endpoint now (the Stripe CLI's `events resend`): a new delivery
// with the whole retry schedule, whatever became of the earlier one.
func (s *Server) retryEvent(c *call) (any, error) {
	epID, err := c.form.ObjectID("webhook_endpoint")
	if err != nil {
		return nil, err
	}
	if epID == nil {
		return nil, missingParam("webhook_endpoint")
	}
	if _, err := readExpand(c.form, false); err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	ev, err := s.cfg.Store.GetEvent(c.ctx, c.scope, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	ep, err := s.cfg.Store.GetEndpoint(c.ctx, c.scope, *epID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, resourceMissing("webhook endpoint", "webhook_endpoint")
	}
	if err != nil {
		return nil, err
	}
	if ep.Status != store.EndpointEnabled {
		return nil, invalidParam("webhook_endpoint", "parameter_invalid", "The webhook endpoint is disabled; enable it before resending to it.")
	}
	c.touch(ev.ID, ev.ObjectID(), ep.ID)
	if err := s.cfg.Emitter.Resend(c.ctx, c.scope, ev.ID, ep.ID); err != nil {
		return nil, err
	}
	ev, err = s.cfg.Store.GetEvent(c.ctx, c.scope, ev.ID) // pending_webhooks counts the resend
	if err != nil {
		return nil, err
	}
	return ev.In(c.version), nil
}

func (s *Server) listEvents(c *call) (any, error) {
	f := c.form
	var filter store.EventFilter
	typ, err := f.NonEmpty("type")
	if err != nil {
		return nil, err
	}
	var matched []string
	if typ != nil {
		if matched = matchTypes(*typ); len(matched) == 0 {
			return nil, invalidParam("type", "parameter_invalid", "Invalid type: no event type matches it.")
		}
	}
	types, _, err := f.Values("types")
	if err != nil {
		return nil, err
	}
	for _, t := range types {
		if !contains(store.EventTypes, t) {
			return nil, invalidParam("types", "parameter_invalid", "Invalid types: unknown event type.")
		}
	}
	if typ != nil && len(types) > 0 {
		return nil, invalidParam("types", "parameter_invalid", "type and types are mutually exclusive.")
	}
	filter.Types = types
	if typ != nil {
		filter.Types = matched
	}
	if filter.DeliverySuccess, err = f.Bool("delivery_success"); err != nil {
		return nil, err
	}
	page, err := c.readListPage()
	if err != nil {
		return nil, err
	}
	evs, hasMore, err := s.cfg.Store.ListEvents(c.ctx, c.scope, filter, page)
	if err != nil {
		return nil, listError(err, "event", page)
	}
	for i, ev := range evs {
		c.touch(ev.ID, ev.ObjectID())
		evs[i] = ev.In(c.version)
	}
	return newList("/v1/events", evs, hasMore), nil
}

// matchTypes returns the event types a type filter names: the type itself, or with * wildcards (each
// matching any run of characters, as in identity.verification_session.*) every type it matches.
func matchTypes(pattern string) []string {
	var out []string
	for _, t := range store.EventTypes {
		if wildcardMatch(pattern, t) {
			out = append(out, t)
		}
	}
	return out
}

// wildcardMatch reports whether s matches pattern, where * matches any run of characters and nothing else
// is special.
func wildcardMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for _, p := range parts[1 : len(parts)-1] {
		i := strings.Index(s, p)
		if i < 0 {
			return false
		}
		s = s[i+len(p):]
	}
	return strings.HasSuffix(s, parts[len(parts)-1])
}

func contains(list []string, v string) bool {
	return slices.Contains(list, v)
}

func (s *Server) listRequestLogs(c *call) (any, error) {
	object, err := c.form.ObjectID("object")
	if err != nil {
		return nil, err
	}
	page, err := readPage(c.form)
	if err != nil {
		return nil, err
	}
	if page.Created != (store.CreatedRange{}) {
		return nil, unknownParam("created")
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	var named string
	if object != nil {
		named = *object
	}
	logs, hasMore, err := s.cfg.Store.ListRequestLogs(c.ctx, c.scope, named, page)
	if err != nil {
		return nil, listError(err, "request log", page)
	}
	views, err := c.renderLogs(c.ctx, logs)
	if err != nil {
		return nil, err
	}
	return newList("/v1/request_logs", views, hasMore), nil
}
