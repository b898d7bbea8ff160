package api

import (
	"errors"
	"strings"

	"github.com/identityd/identityd/store"
)

var sessionTypes = []string{"document", "id_number"}

// readOptions reads options[document][…]; unset is true for `options=` or `options[document]=`.
func readOptions(f *Form) (opts *store.Options, unset bool, err error) {
	if v, ok := f.Value("options"); ok {
		if v != "" {
			return nil, false, invalidParam("options", "parameter_invalid", "Invalid options: send options[document][…] or options= to unset.")
		}
		unset = true
	}
	if v, ok := f.Value("options[document]"); ok {
		if v != "" {
			return nil, false, invalidParam("options[document]", "parameter_invalid", "Invalid options[document]: send its fields or an empty string to unset.")
		}
		unset = true
	}
	const p = "options[document]"
	if !f.Has(p+"[allowed_types]") && !f.Has(p+"[require_id_number]") && !f.Has(p+"[require_live_capture]") &&
		!f.Has(p+"[require_matching_selfie]") {
		return nil, unset, nil // an unknown options[document][…] is left unread and rejected as unknown
	}
	doc := &store.DocumentOptions{}
	types, found, err := f.Values(p + "[allowed_types]")
	if err != nil {
		return nil, false, err
	}
	if found {
		for _, t := range types {
			if t != "driving_license" && t != "id_card" && t != "passport" {
				return nil, false, invalidParam(p+"[allowed_types]", "parameter_invalid", "Invalid allowed_types: must be driving_license, id_card or passport.")
			}
		}
		doc.AllowedTypes = types
	}
	for _, b := range []struct {
		name string
		dst  **bool
	}{{"require_id_number", &doc.RequireIDNumber}, {"require_live_capture", &doc.RequireLiveCapture},
		{"require_matching_selfie", &doc.RequireMatchingSelfie}} {
		if *b.dst, err = f.Bool(p + "[" + b.name + "]"); err != nil {
			return nil, false, err
		}
	}
	return &store.Options{Document: doc}, false, nil
}

// readProvidedDetails reads provided_details[email|phone].
func readProvidedDetails(f *Form) (*store.ProvidedDetails, error) {
	if !f.Has("provided_details") {
		return nil, nil
	}
	email, err := f.String("provided_details[email]")
	if err != nil {
		return nil, err
	}
	if email != nil && !validEmail(*email) {
		return nil, invalidParam("provided_details[email]", "email_invalid", "Invalid email address.")
	}
	phone, err := f.String("provided_details[phone]")
	if err != nil {
		return nil, err
	}
	return &store.ProvidedDetails{Email: email, Phone: phone}, nil
}

func validEmail(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at < len(s)-1 && !strings.ContainsAny(s, " \t\r\n")
}

func (s *Server) createSession(c *call) (any, error) {
	f := c.form
	var p store.SessionCreate
	typ, err := f.Enum("type", sessionTypes...)
	if err != nil {
		return nil, err
	}
	if typ == nil {
		return nil, missingParam("type")
	}
	p.Type = *typ
	if p.ClientReferenceID, err = f.String("client_reference_id"); err != nil {
		return nil, err
	}
	if p.Metadata, err = f.CreateMetadata(); err != nil {
		return nil, err
	}
	if p.Options, _, err = readOptions(f); err != nil {
		return nil, err
	}
	if p.ProvidedDetails, err = readProvidedDetails(f); err != nil {
		return nil, err
	}
	if p.RelatedCustomer, err = f.NonEmpty("related_customer"); err != nil {
		return nil, err
	}
	if p.RelatedCustomerAccount, err = f.NonEmpty("related_customer_account"); err != nil {
		return nil, err
	}
	if f.Has("related_person") {
		acct, err := f.NonEmpty("related_person[account]")
		if err != nil {
			return nil, err
		}
		person, err := f.NonEmpty("related_person[person]")
		if err != nil {
			return nil, err
		}
		if acct == nil || person == nil {
			return nil, missingParam("related_person[account]")
		}
		p.RelatedPerson = &store.RelatedPerson{Account: *acct, Person: *person}
	}
	if p.ReturnURL, err = f.String("return_url"); err != nil {
		return nil, err
	} else if ru := p.ReturnURL; ru != nil && !strings.HasPrefix(*ru, "http://") && !strings.HasPrefix(*ru, "https://") {
		return nil, invalidParam("return_url", "url_invalid", "Invalid return_url: must be an http or https URL.")
	}
	ex, err := readExpand(f, false, sessionExpandable...)
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	sess, evs, err := s.cfg.Store.CreateSession(c.ctx, c.scope, p, c.origin())
	if err != nil {
		return nil, err
	}
	c.name(sess.ID)
	c.published(evs)
	return c.renderSession(sess, ex)
}

func (s *Server) retrieveSession(c *call) (any, error) {
	ex, err := readExpand(c.form, false, sessionExpandable...)
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	sess, err := s.cfg.Store.GetSession(c.ctx, c.scope, c.r.PathValue("id"))
	if err != nil {
		return nil, err
	}
	return c.renderSession(sess, ex)
}

func (s *Server) updateSession(c *call) (any, error) {
	f := c.form
	var p store.SessionUpdate
	var err error
	if p.Type, err = f.Enum("type", sessionTypes...); err != nil {
		return nil, err
	}
	if p.Metadata, p.ClearMetadata, err = f.Metadata(); err != nil {
		return nil, err
	}
	if p.Options, p.UnsetOptions, err = readOptions(f); err != nil {
		return nil, err
	}
	if p.ProvidedDetails, err = readProvidedDetails(f); err != nil {
		return nil, err
	}
	ex, err := readExpand(f, false, sessionExpandable...)
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	sess, evs, err := s.cfg.Store.UpdateSession(c.ctx, c.scope, c.r.PathValue("id"), p, c.origin())
	if err != nil {
		return nil, sessionStateError(err, "update", "requires_input")
	}
	c.published(evs)
	return c.renderSession(sess, ex)
}

func (s *Server) cancelSession(c *call) (any, error) {
	ex, err := readExpand(c.form, false, sessionExpandable...)
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	sess, evs, err := s.cfg.Store.CancelSession(c.ctx, c.scope, c.r.PathValue("id"), c.origin())
	if err != nil {
		return nil, sessionStateError(err, "cancel", "requires_input")
	}
	c.published(evs)
	return c.renderSession(sess, ex)
}

// sessionStateError words a status_transition_invalid for the action.
func sessionStateError(err error, action, allowed string) error {
	if errors.Is(err, store.ErrInvalidTransition) {
		return transitionInvalid("You can only " + action + " a VerificationSession in " + allowed +
			" status, and never once its redaction was requested.")
	}
	return err
}

func (s *Server) listSessions(c *call) (any, error) {
	f := c.form
	var filter store.SessionFilter
	if err := f.NonEmptyFilters(StringFilter{"client_reference_id", &filter.ClientReferenceID},
		StringFilter{"related_customer", &filter.RelatedCustomer},
		StringFilter{"related_customer_account", &filter.RelatedCustomerAccount}); err != nil {
		return nil, err
	}
	status, err := f.Enum("status", store.StatusRequiresInput, store.StatusProcessing, store.StatusVerified, store.StatusCanceled)
	if err != nil {
		return nil, err
	}
	if status != nil {
		filter.Status = *status
	}
	page, err := readPage(f)
	if err != nil {
		return nil, err
	}
	ex, err := readExpand(f, true, sessionExpandable...)
	if err != nil {
		return nil, err
	}
	if err := c.checkUnknown(); err != nil {
		return nil, err
	}
	const url = "/v1/identity/verification_sessions"
	if len(ex) == 0 { // nothing to expand: splice the stored JSON instead of decoding and re-encoding it
		sessions, hasMore, err := s.cfg.Store.ListSessionsJSON(c.ctx, c.scope, filter, page)
		if err != nil {
			return nil, listError(err, "verification session", page)
		}
		return c.renderSessionList(url, sessions, hasMore)
	}
	sessions, hasMore, err := s.cfg.Store.ListSessions(c.ctx, c.scope, filter, page)
	if err != nil {
		return nil, listError(err, "verification session", page)
	}
	views, err := c.renderSessions(c.ctx, sessions, ex)
	if err != nil {
		return nil, err
	}
	return newList(url, views, hasMore), nil
}
