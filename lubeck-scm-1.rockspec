-- LuaRocks build of the same tree as `cmake --install` (docs/embedding.md):
--   luarocks make --tree DIR lubeck-scm-1.rockspec
-- installs bin/lubeck, the Lua modules in LuaRocks' LUADIR (lubeck/*.lua), the
-- test host's C module in its LIBDIR (lubeck/testhost.so), and keeps lubeck.h,
-- liblubeck.so/.a and lubeck.pc in the rock's own folder
-- ($(luarocks show --rock-dir lubeck)/dev/lib/pkgconfig).
rockspec_format = "3.0"
package = "lubeck"
version = "scm-1"

source = {
   -- Placeholder: `luarocks make` builds the checked-out tree and never fetches it.
   url = "git+https://example.invalid/lubeck.git",
}

description = {
   summary = "Lua web handlers behind Mongrel2, run by a C host on LuaJIT",
   detailed = [[
lubeck is Brubeck's idea rebuilt as a C host (libev, ZeroMQ, PCRE2, libsodium)
running Lua handlers in LuaJIT coroutines behind Mongrel2. The rock installs the
`lubeck` command, the lubeck.* Lua modules and lubeck.test, an in-process test
client for apps (no Mongrel2 needed).]],
   license = "MIT",
   labels = { "web", "mongrel2", "zeromq", "luajit" },
}

-- lua-cjson is needed at run time but not listed: LuaRocks cannot see Debian's
-- lua-cjson package (RUN_DEBS in the Makefile), and listing it makes an offline
-- `luarocks make` fail. Elsewhere: luarocks install lua-cjson.
dependencies = {
   "lua >= 5.1",
}

-- Headers (and libraries) the C host is built against. CMake itself finds them
-- with pkg-config (libev with find_path/find_library); these are checked by
-- LuaRocks first and passed on below.
external_dependencies = {
   ZMQ = { header = "zmq.h", library = "zmq" },
   PCRE2 = { header = "pcre2.h", library = "pcre2-8" },
   SODIUM = { header = "sodium.h", library = "sodium" },
   HIREDIS = { header = "hiredis/hiredis.h", library = "hiredis" },
   EV = { header = "ev.h", library = "ev" },
   LUAJIT = { header = "luajit-2.1/luajit.h" },
   PQ = { header = "postgresql/libpq-fe.h", library = "pq" },
}

build = {
   type = "cmake",
   variables = {
      CMAKE_BUILD_TYPE = "Release",
      CMAKE_INSTALL_PREFIX = "$(PREFIX)",
      CMAKE_INSTALL_BINDIR = "$(BINDIR)",
      -- Not "lib": LuaRocks moves everything in $(LIBDIR) onto the Lua cpath.
      CMAKE_INSTALL_LIBDIR = "dev/lib",
      LUBECK_LUADIR = "$(LUADIR)",
      LUBECK_LIBDIR = "$(LIBDIR)",
      LUBECK_TESTS = "OFF",
      EV_INCLUDE_DIR = "$(EV_INCDIR)",
      EV_LIBRARY = "$(EV_LIBDIR)/libev.so",
      CMAKE_C_FLAGS = "-I$(ZMQ_INCDIR) -I$(PCRE2_INCDIR) -I$(SODIUM_INCDIR) -I$(HIREDIS_INCDIR)",
   },
}
