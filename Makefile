# rowgate: `make run` starts the sidecar on a local throwaway Postgres with the
# demo schema; `make test` builds and runs every test against a real Postgres.
# With DATABASE_URL set, `make run` uses that database and starts none.

BUILD_DIR ?= build
JOBS ?= $(shell nproc)
PG := deploy/local/pg.sh
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=RelWithDebInfo

.PHONY: all deps build run test tsan thread-safety bench clean

all: build

deps:
	@bash deploy/local/install-deps.sh

build: deps
	@cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	@bash deploy/local/run.sh $(BUILD_DIR)/rowgate $(ARGS)

# The local Postgres is started for the tests and stopped afterwards.
test: build
	@bash deploy/local/with-pg.sh rowgate_test \
	  ctest --test-dir $(BUILD_DIR) --output-on-failure $(CTEST_ARGS)

# The loader's and the worker pool's tests under ThreadSanitizer, in a build
# directory of their own (none of these tests needs Postgres).
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DROWGATE_TSAN=ON >/dev/null
	@cmake --build build-tsan -j $(JOBS) --target loader_test storage_test
	@$(TSAN_ENV) build-tsan/tests/loader_test
	@$(TSAN_ENV) build-tsan/tests/storage_test --gtest_filter='WorkerPool*'

# rowgate's code compiled by clang with -Wthread-safety as errors: every
# ABSL_GUARDED_BY / ABSL_EXCLUSIVE_LOCKS_REQUIRED is checked (storage/mutex.h).
thread-safety: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER=clang++-14 \
	  -DROWGATE_SANITIZE=ON -DROWGATE_WERROR=ON >/dev/null
	@cmake --build build-asan -j $(JOBS) --target rowgate_storage \
	  rowgate_loader rowgate_service rowgate

bench: build
	@bash bench/run.sh $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) build-tsan
