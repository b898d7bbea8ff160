package api

import (
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
	return ev, nil
}

func (s *Server) listEvents(c *call) (any, error) {
	f := c.form
	var filter store.EventFilter
	typ, err := f.Enum("type", store.EventTypes...)
	if err != nil {
		return nil, err
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
		filter.Types = []string{*typ}
	}
	page, err := c.readListPage()
	if err != nil {
		return nil, err
	}
	evs, hasMore, err := s.cfg.Store.ListEvents(c.ctx, c.scope, filter, page)
	if err != nil {
		return nil, listError(err, "event", page)
	}
	for _, ev := range evs {
		c.touch(ev.ID, ev.ObjectID())
	}
	return newList("/v1/events", evs, hasMore), nil
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
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
