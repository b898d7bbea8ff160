package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// rangeDocsScript reads one stretch of a lex index and the documents its members name, in one round trip
// instead of a range read and then an MGET. The document keys are built in the script from a prefix that
// carries the index's hash tag {acct}, so they hash to the index key's slot and the script runs on Redis
// Cluster too (Redis lets a script reach keys it did not declare when they are in the declared key's slot).
// Index members are "<created>:<id>"; the id is what follows the first colon.
//
// KEYS: the index. ARGV: "rev" (newest first) or "fwd", the lex min and max, the offset, the count, the
// document key prefix. Returns the members, then one document (or nil when missing) per member. The MGET goes in
// chunks of 1,000 keys: Lua's unpack cannot spread a table of more than about 8,000 values.
var rangeDocsScript = redis.NewScript(`
local members
if ARGV[1] == 'rev' then
  members = redis.call('ZREVRANGEBYLEX', KEYS[1], ARGV[3], ARGV[2], 'LIMIT', ARGV[4], ARGV[5])
else
  members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', ARGV[4], ARGV[5])
end
local n = #members
if n == 0 then
  return {}
end
local keys = {}
for i = 1, n do
  local m = members[i]
  local colon = string.find(m, ':', 1, true)
  keys[i] = ARGV[6] .. string.sub(m, (colon or 0) + 1)
end
local out = members
for from = 1, n, 1000 do
  local to = math.min(from + 999, n)
  local docs = redis.call('MGET', unpack(keys, from, to))
  for i = from, to do
    out[n + i] = docs[i - from + 1]
  end
end
return out
`)

// rangeDocs reads up to count index entries in list order (as rangeIDs does) with the documents under
// docPrefix+id, as JSON (DecodeDoc); missing documents are nil. It is one round trip: rangeDocsScript.
func (s *Store) rangeDocs(ctx context.Context, key, docPrefix string, p Page, cursorMember string, offset, count int64) (ids []string, docs [][]byte, err error) {
	minLex, maxLex, ok := p.bounds(cursorMember)
	if !ok {
		return nil, nil, nil
	}
	dir := "rev"
	if p.EndingBefore != "" {
		dir = "fwd"
	}
	vals, err := rangeDocsScript.Run(ctx, s.rdb, []string{key}, dir, minLex, maxLex, offset, count, docPrefix).Slice()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("read index: %w", err)
	}
	if len(vals)%2 != 0 {
		return nil, nil, fmt.Errorf("read index: script answered %d values", len(vals))
	}
	n := len(vals) / 2
	ids = make([]string, n)
	docs = make([][]byte, n)
	for i := range n {
		m, ok := vals[i].(string)
		if !ok {
			return nil, nil, fmt.Errorf("read index: script answered a %T member", vals[i])
		}
		ids[i] = memberID(m)
		if str, ok := vals[n+i].(string); ok {
			if docs[i], err = decodeDocString(str); err != nil {
				return nil, nil, fmt.Errorf("decode %s: %w", ids[i], err)
			}
		}
	}
	return ids, docs, nil
}
