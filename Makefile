# Everyday commands. `make check` is what CI runs (.ci/run: real Redis, a Redis Cluster, race detector, fuzzing).
.PHONY: run test race check lint bench fuzz sdk

run:
	go run ./cmd/identityd

# The quick loop: skips the tests that build the binary or crash processes.
test:
	go test -short ./...

race:
	go test -race -count=1 ./...

check:
	bash .ci/run

# The SDK compatibility suite alone: stripe-go, Stripe's Node SDK and python3-stripe, each with its summary line.
sdk:
	go test -count=1 -v -run 'TestSDKCompat|TestOpenAPISpec' ./cmd/identityd/

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	go vet ./...
	golangci-lint run ./...   # go install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

fuzz:
	go test -run='^$$' -fuzz='^FuzzParseForm$$' -fuzztime=200000x ./api
	go test -run='^$$' -fuzz='^FuzzScrubDoc$$' -fuzztime=200000x ./store

# Needs a Redis you can spare: make bench REDIS_URL=redis://127.0.0.1:6379/15
bench:
	go test -run='^$$' -bench=. -benchmem ./...
	go run ./cmd/identityd bench --redis-url "$(REDIS_URL)"
