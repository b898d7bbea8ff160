package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Index members are "<created, 12 digits>:<id>" in sorted sets whose scores are all 0, so Redis orders them by
// (created, id) and a cursor or a created range becomes a lexicographic bound — no cursor needs to be in the
// index it is used on.

func indexMember(created int64, id string) string {
	return fmt.Sprintf("%012d:%s", created, id)
}

func memberID(member string) string {
	if _, after, ok := strings.Cut(member, ":"); ok {
		return after
	}
	return member
}

// CreatedRange filters on `created` (unix seconds). Nil fields are open.
type CreatedRange struct {
	GT, GTE, LT, LTE *int64
}

// Page asks for one page of a list, newest first.
type Page struct {
	Limit         int
	StartingAfter string // object id; mutually exclusive with EndingBefore
	EndingBefore  string
	Created       CreatedRange
}

// maxCreated is the largest `created` an index member can hold (12 digits).
const maxCreated = 999_999_999_999

// bounds turns the created range and the cursor into the [min, max] lex bounds of ZRANGEBYLEX; ok is false
// when the range is empty. cursorMember is the index member of the cursor object, if any.
func (p Page) bounds(cursorMember string) (minLex, maxLex string, ok bool) {
	lo, hi := int64(0), int64(maxCreated) // inclusive created bounds, clamped so that ±1 never overflows
	if c := p.Created.GT; c != nil {
		if *c >= maxCreated {
			return "", "", false
		}
		lo = maxInt(lo, *c+1)
	}
	if c := p.Created.GTE; c != nil {
		lo = maxInt(lo, *c)
	}
	if c := p.Created.LT; c != nil {
		if *c <= 0 {
			return "", "", false
		}
		hi = minInt(hi, *c-1)
	}
	if c := p.Created.LTE; c != nil {
		hi = minInt(hi, *c)
	}
	if lo > hi {
		return "", "", false
	}
	minLex, maxLex = "-", "+"
	if lo > 0 {
		minLex = "[" + fmt.Sprintf("%012d:", lo)
	}
	if hi < maxCreated {
		maxLex = "(" + fmt.Sprintf("%012d:", hi+1)
	}
	if cursorMember != "" {
		if p.StartingAfter != "" { // older than the cursor
			if maxLex == "+" || cursorMember <= maxLex[1:] {
				maxLex = "(" + cursorMember
			}
		} else if p.EndingBefore != "" { // newer than the cursor
			if minLex == "-" || cursorMember >= minLex[1:] {
				minLex = "(" + cursorMember
			}
		}
	}
	return minLex, maxLex, true
}

func maxInt(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func minInt(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

// rangeIDs reads up to count ids from a lex index in list order (newest first), starting offset entries in.
// With ending_before the walk goes upward from the cursor, and the caller reverses the page.
func (s *Store) rangeIDs(ctx context.Context, key string, p Page, cursorMember string, offset, count int64) ([]string, error) {
	minLex, maxLex, ok := p.bounds(cursorMember)
	if !ok {
		return nil, nil
	}
	var members []string
	var err error
	if p.EndingBefore != "" {
		members, err = s.rdb.ZRangeByLex(ctx, key, &redis.ZRangeBy{Min: minLex, Max: maxLex, Offset: offset, Count: count}).Result()
	} else {
		members, err = s.rdb.ZRevRangeByLex(ctx, key, &redis.ZRangeBy{Min: minLex, Max: maxLex, Offset: offset, Count: count}).Result()
	}
	if err != nil {
		return nil, fmt.Errorf("read index: %w", err)
	}
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = memberID(m)
	}
	return ids, nil
}

// listFiltered pages through an index, loads each object with load and keeps those match accepts, until it
// has limit+1 of them or the index ends. It returns the page in list order (newest first) and has_more in the
// direction of travel.
func listFiltered[T any](ctx context.Context, s *Store, key string, p Page, cursorMember string,
	load func(ctx context.Context, ids []string) ([]*T, error), match func(*T) bool) ([]*T, bool, error) {
	return listPaged(ctx, p, func(ctx context.Context, offset, count int64) ([]*T, error) {
		ids, err := s.rangeIDs(ctx, key, p, cursorMember, offset, count)
		if err != nil || len(ids) == 0 {
			return nil, err
		}
		return load(ctx, ids)
	}, match)
}

// listPaged is listFiltered's walk over any reader of index stretches: fetch returns one object (nil when
// missing) per index entry of the stretch of up to count entries that starts offset entries in, in list order
// (with ending_before, upward from the cursor). A stretch shorter than count is the end of the index.
func listPaged[T any](ctx context.Context, p Page, fetch func(ctx context.Context, offset, count int64) ([]*T, error),
	match func(*T) bool) ([]*T, bool, error) {
	if p.Limit <= 0 {
		p.Limit = 10
	}
	want := p.Limit + 1
	var out []*T
	var offset int64
	batch := int64(want)
	for len(out) < want {
		objs, err := fetch(ctx, offset, batch)
		if err != nil {
			return nil, false, err
		}
		if len(objs) == 0 {
			break
		}
		for _, o := range objs {
			if o != nil && (match == nil || match(o)) {
				out = append(out, o)
				if len(out) == want {
					break
				}
			}
		}
		offset += int64(len(objs))
		if int64(len(objs)) < batch {
			break
		}
		if batch < 1000 {
			batch *= 2
		}
	}
	hasMore := len(out) > p.Limit
	if hasMore {
		out = out[:p.Limit]
	}
	if p.EndingBefore != "" {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, hasMore, nil
}
