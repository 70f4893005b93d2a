-- luacheck (Debian's lua-check): `luacheck lua apps tests/spec`
std = "luajit"
-- handlers take (req, ...) and class methods (self, ...) whether they use them or not
unused_args = false
max_line_length = 130
files["tests/spec"] = { std = "+busted" }
