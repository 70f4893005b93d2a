# The two commands of the README, over CMake:
#   make run    install missing Debian packages (as root), build, serve apps/hello on :6767
#   make test   build and run every test: C units, Lua specs, fuzz corpora, end to end
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
PORT ?= 6767

RUN_DEBS  = cmake make gcc pkg-config libzmq3-dev libluajit-5.1-dev luajit libev-dev \
            lua-cjson libpcre2-dev libsodium-dev mongrel2-core
TEST_DEBS = $(RUN_DEBS) libcmocka-dev lua-busted curl python3 python3-pytest python3-zmq \
            redis-server clang valgrind wrk lua-check luarocks iproute2

.PHONY: all build run test deps test-deps bench fuzz clean

all: build

deps:
	@tools/deps.sh $(RUN_DEBS)

test-deps:
	@tools/deps.sh $(TEST_DEBS)

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j2

run: deps build
	$(BUILD)/lubeck serve apps/hello --port $(PORT)

test: test-deps build
	@tests/run.sh $(BUILD)

bench: test-deps build
	-tests/bench/nginx-fetch.sh $(BUILD)/nginx-ref
	tests/bench/run.sh $(BUILD)

FUZZ_SECONDS ?= 60
fuzz: test-deps
	tests/fuzz/run.sh $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) build-fuzz
