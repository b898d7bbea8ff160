package api

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/identityd/identityd/store"
)

// requestLogView is a request log as the API shows it: the stored log with the request's personal part put
// back from its session's personal-data record (scrubbed once the session is redacted) and its response
// rendered from the stored reference document.
type requestLogView struct {
	ID             string          `json:"id"`
	Object         string          `json:"object"`
	Created        int64           `json:"created"`
	Livemode       bool            `json:"livemode"`
	Method         string          `json:"method"`
	Path           string          `json:"path"`
	Status         int             `json:"status"`
	IdempotencyKey *string         `json:"idempotency_key"`
	Params         []store.Param   `json:"params"`
	Response       json.RawMessage `json:"response"`
	Objects        []string        `json:"objects"`
}

// maxRejectedParams bounds what the log of a rejected request keeps of it.
const maxRejectedParams = 50

// storedParams returns what a request log keeps of the request's parameters: the kept ones as sent, and the
// personal ones only as a summary (known names, placeholder values) when no session's record holds them. A
// rejected request keeps a bounded summary: at most maxRejectedParams known names, no value.
func storedParams(params []store.Param, inRecord bool, rejected *Error) []store.Param {
	kept, personal := store.SplitParams(params)
	if !inRecord {
		kept = append(kept, store.ScrubParams(personal)...)
	}
	if rejected == nil {
		return kept
	}
	if len(kept) > maxRejectedParams {
		kept = kept[:maxRejectedParams]
	}
	for i := range kept {
		// A rejected request was not read as the endpoint reads it: a name kept elsewhere (url, description) may
		// carry anything here. Its log keeps the names only.
		kept[i].Value = Redacted
	}
	return kept
}

// renderLogs renders stored request logs as the API shows them.
func (c *call) renderLogs(ctx context.Context, logs []*store.RequestLog) ([]*requestLogView, error) {
	bySession := map[string][]string{}
	for _, l := range logs {
		if l.Session != "" {
			bySession[l.Session] = append(bySession[l.Session], l.ID)
		}
	}
	parts, err := c.srv.cfg.Store.RequestPersonals(ctx, c.scope, bySession)
	if err != nil {
		return nil, err
	}
	views := make([]*requestLogView, len(logs))
	for i, l := range logs {
		v := &requestLogView{ID: l.ID, Object: "request_log", Created: l.Created, Livemode: l.Livemode,
			Method: l.Method, Path: l.Path, Status: l.Status, IdempotencyKey: l.IdempotencyKey,
			Params: l.Params, Objects: l.Objects}
		if v.Objects == nil {
			v.Objects = []string{}
		}
		if p := parts[l.ID]; p != nil {
			v.Params = append(append([]store.Param{}, l.Params...), p.Params...)
			if p.IdempotencyKey != nil {
				v.IdempotencyKey = p.IdempotencyKey
			}
		}
		switch v.Response, err = c.renderStored(ctx, l.Response); {
		case errors.Is(err, store.ErrNotFound):
			v.Response = json.RawMessage("null") // what it showed is gone (written by an older format, say)
		case err != nil:
			return nil, err
		}
		views[i] = v
	}
	return views, nil
}
