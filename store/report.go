package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// Report is a VerificationReport: one attempt to collect and verify a person's data.
type Report struct {
	ID                  string          `json:"id"`
	Object              string          `json:"object"`
	ClientReferenceID   *string         `json:"client_reference_id"`
	Created             int64           `json:"created"`
	Document            *DocumentReport `json:"document,omitempty"`
	Email               *EmailReport    `json:"email,omitempty"`
	IDNumber            *IDNumberReport `json:"id_number,omitempty"`
	Livemode            bool            `json:"livemode"`
	Options             *Options        `json:"options"`
	Phone               *PhoneReport    `json:"phone,omitempty"`
	Selfie              *SelfieReport   `json:"selfie,omitempty"`
	Type                string          `json:"type"`
	VerificationSession *string         `json:"verification_session"`
}

// CheckError explains a failed check.
type CheckError struct {
	Code   *string `json:"code"`
	Reason *string `json:"reason"`
}

// Check statuses.
const (
	CheckVerified   = "verified"
	CheckUnverified = "unverified"
)

// DocumentReport is the document check.
type DocumentReport struct {
	Address              *Address    `json:"address"`
	Dob                  *Date       `json:"dob"`
	Error                *CheckError `json:"error"`
	ExpirationDate       *Date       `json:"expiration_date"`
	Files                []string    `json:"files"`
	FirstName            *string     `json:"first_name"`
	IssuedDate           *Date       `json:"issued_date"`
	IssuingCountry       *string     `json:"issuing_country"`
	LastName             *string     `json:"last_name"`
	Number               *string     `json:"number"`
	Sex                  *string     `json:"sex"`
	Status               string      `json:"status"`
	Type                 *string     `json:"type"`
	UnparsedPlaceOfBirth *string     `json:"unparsed_place_of_birth"`
	UnparsedSex          *string     `json:"unparsed_sex"`
}

// IDNumberReport is the id-number check.
type IDNumberReport struct {
	Dob          *Date       `json:"dob"`
	Error        *CheckError `json:"error"`
	FirstName    *string     `json:"first_name"`
	IDNumber     *string     `json:"id_number"`
	IDNumberType *string     `json:"id_number_type"`
	LastName     *string     `json:"last_name"`
	Status       string      `json:"status"`
}

// SelfieReport is the selfie check; both fields are File ids of images.
type SelfieReport struct {
	Document *string     `json:"document"`
	Error    *CheckError `json:"error"`
	Selfie   *string     `json:"selfie"`
	Status   string      `json:"status"`
}

// EmailReport is the email check.
type EmailReport struct {
	Email  *string     `json:"email"`
	Error  *CheckError `json:"error"`
	Status string      `json:"status"`
}

// PhoneReport is the phone check.
type PhoneReport struct {
	Error  *CheckError `json:"error"`
	Phone  *string     `json:"phone"`
	Status string      `json:"status"`
}

// ReportFilter selects reports in a list.
type ReportFilter struct {
	VerificationSession string
	ClientReferenceID   string
	Type                string
}

// GetReport loads one report.
func (s *Store) GetReport(ctx context.Context, sc Scope, id string) (*Report, error) {
	if !safeID(id) {
		return nil, ErrNotFound
	}
	body, err := s.rdb.Get(ctx, s.reportKey(sc, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get report: %w", err)
	}
	var r Report
	if body, err = DecodeDoc(body); err != nil {
		return nil, fmt.Errorf("decode report %s: %w", id, err)
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decode report %s: %w", id, err)
	}
	return &r, nil
}

// GetReports loads reports by id with one MGET; missing ones are nil.
func (s *Store) GetReports(ctx context.Context, sc Scope, ids []string) ([]*Report, error) {
	return mget[Report](ctx, s, ids, func(id string) string { return s.reportKey(sc, id) })
}

// ListReports returns a page of reports, newest first.
func (s *Store) ListReports(ctx context.Context, sc Scope, f ReportFilter, p Page) ([]*Report, bool, error) {
	cursor, err := s.cursorMember(p, func(id string) (int64, error) {
		r, err := s.GetReport(ctx, sc, id)
		if err != nil {
			return 0, err
		}
		return r.Created, nil
	})
	if err != nil {
		return nil, false, err
	}
	key := s.reportIndexKey(sc)
	if f.VerificationSession != "" {
		key = s.sessionReportsKey(sc, f.VerificationSession)
	}
	match := func(r *Report) bool {
		return (f.VerificationSession == "" || (r.VerificationSession != nil && *r.VerificationSession == f.VerificationSession)) &&
			(f.ClientReferenceID == "" || (r.ClientReferenceID != nil && *r.ClientReferenceID == f.ClientReferenceID)) &&
			(f.Type == "" || r.Type == f.Type)
	}
	return listFiltered(ctx, s, key, p, cursor, func(ctx context.Context, ids []string) ([]*Report, error) {
		return s.GetReports(ctx, sc, ids)
	}, match)
}

// SessionReportIDs returns the ids of every report of a session.
func (s *Store) SessionReportIDs(ctx context.Context, sc Scope, sessionID string) ([]string, error) {
	members, err := s.rdb.ZRange(ctx, s.sessionReportsKey(sc, sessionID), 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("session reports: %w", err)
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = memberID(m)
	}
	return ids, nil
}
