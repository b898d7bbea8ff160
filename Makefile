# Everyday commands; CI runs .ci/run, which does the same checks against a real Redis.
.PHONY: run test race lint bench fuzz

run:
	go run ./cmd/identityd

test:
	go test -count=1 ./...

race:
	go test -race -count=1 ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	go vet ./...

fuzz:
	go test -run='^$$' -fuzz='^FuzzParseForm$$' -fuzztime=30s ./api

# Needs a Redis you can spare: make bench REDIS_URL=redis://127.0.0.1:6379/15
bench:
	go test -run='^$$' -bench=. -benchmem ./...
	go run ./cmd/identityd bench --redis-url "$(REDIS_URL)"
