# rowgate: `make run` starts the sidecar on a local throwaway Postgres with the
# demo schema; `make test` builds and runs every test against a real Postgres.
# With DATABASE_URL set, `make run` uses that database and starts none.

BUILD_DIR ?= build
JOBS ?= $(shell nproc)
PG := deploy/local/pg.sh
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo
# Targets to build (empty: all), e.g. TARGETS=rowgate as deploy/Dockerfile does.
TARGETS ?=

.PHONY: all deps build run test test-faults test-hostile tsan bench clean image test-image

all: build

deps:
	@bash deploy/local/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS) $(if $(TARGETS),--target $(TARGETS))

run: build
	@bash deploy/local/run.sh $(BUILD_DIR)/rowgate $(ARGS)

# The local Postgres is started for the tests and stopped afterwards. The
# long fault tests (label faults_long) are left to `make test-faults`.
test: build
	@bash deploy/local/with-pg.sh rowgate_test \
	  ctest --test-dir $(BUILD_DIR) --output-on-failure -LE faults_long $(CTEST_ARGS)

# Every fault test, the long ones on a second, durable Postgres
# (tests/faults/run.sh).
test-faults: build
	@bash tests/faults/run.sh $(BUILD_DIR) $(CTEST_ARGS)

# Hostile HTTP/2 clients against a real rowgate at full size (README
# "Hostile clients"): reports RSS and a good client's BatchGet latency per
# scenario. HOSTILE_ARGS adds options, e.g. HOSTILE_ARGS="--scenarios a,c".
test-hostile: build
	@bash deploy/local/with-pg.sh rowgate_test \
	  /usr/bin/python3 tests/hostile/h2_flood.py --rowgate $(BUILD_DIR)/rowgate \
	  --json $(BUILD_DIR)/hostile.json $(HOSTILE_ARGS)

# The loader's tests under ThreadSanitizer, in a build directory of their own.
tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DROWGATE_TSAN=ON >/dev/null
	@cmake --build build-tsan -j $(JOBS) --target loader_test
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" build-tsan/tests/loader_test

# The container images (deploy/Dockerfile) built with podman, no Docker
# engine or registry needed: localhost/rowgate and
# localhost/rowgate-example-app (README "Run in Kubernetes").
image:
	@bash deploy/local/install-deps.sh image
	@bash deploy/image/build.sh

# The built image's entrypoint, run in a chroot of its filesystem as its
# user with deploy/k8s's environment, against the test Postgres.
test-image: deps image
	@bash deploy/local/with-pg.sh rowgate_test bash tests/deploy/image_test.sh

bench: build
	@bash bench/run.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) build-tsan
