# The two commands of the README, over CMake:
#   make run    install missing Debian packages (as root), build, serve apps/hello on :6767
#   make test   build and run every test: C units, Lua specs, fuzz corpora, end to end
BUILD ?= build
BUILD_TYPE ?= RelWithDebInfo
PORT ?= 6767

RUN_DEBS  = cmake make gcc pkg-config libzmq3-dev libluajit-5.1-dev luajit libev-dev \
            lua-cjson libpcre2-dev libsodium-dev mongrel2-core libhiredis-dev libpq-dev libssl-dev
TEST_DEBS = $(RUN_DEBS) libcmocka-dev lua-busted curl python3 python3-pytest python3-zmq \
            redis-server clang valgrind wrk lua-check luarocks chromium python3-websocket postgresql memcached dnsmasq-base python3-cryptography iproute2

.PHONY: all build run test deps test-deps bench fuzz clean

all: build

deps:
	@tools/deps.sh $(RUN_DEBS)

test-deps:
	@tools/deps.sh $(TEST_DEBS)

# A fresh build folder starts without the unit tests (they need cmocka, which
# `make run` does not install); `make build` and `make test` switch them on.
$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DLUBECK_TESTS=OFF

build: $(BUILD)/Makefile
	cmake -S . -B $(BUILD) -DLUBECK_TESTS=ON >/dev/null
	cmake --build $(BUILD) -j2

# Builds only what it runs: the lubeck executable.
run: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j2 --target lubeck
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
