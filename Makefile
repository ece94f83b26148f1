# Top-level entry points. `make demo` and `make check` each work alone on a
# fresh Debian 12 machine as root: they install what is missing first.
JOBS ?= $(shell nproc)
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60

.PHONY: all deps build demo check test test-asan fuzz bench clean

all: build

deps:
	@./scripts/deps.sh

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

demo: deps build
	@./scripts/demo.sh $(BUILD)/ember

test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan:
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DEMBER_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	@cd $(ASAN_BUILD) && ctest --output-on-failure -j $(JOBS)

check: deps
	@$(MAKE) --no-print-directory test
	@$(MAKE) --no-print-directory test-asan

fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DEMBER_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_reader fuzz_modelfile fuzz_http
	@mkdir -p fuzz/corpus/reader fuzz/corpus/modelfile fuzz/corpus/http
	./$(FUZZ_BUILD)/fuzz_reader -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -dict=fuzz/reader.dict fuzz/corpus/reader
	./$(FUZZ_BUILD)/fuzz_modelfile -max_total_time=$(FUZZ_SECONDS) -max_len=65536 fuzz/corpus/modelfile
	./$(FUZZ_BUILD)/fuzz_http -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -dict=fuzz/http.dict fuzz/corpus/http

bench: build
	@cmake --build $(BUILD) -j $(JOBS) --target benches

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
