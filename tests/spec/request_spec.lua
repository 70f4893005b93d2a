-- docs/reference.md, Requests, in-process: the request object. App: tests/spec/apps/request.
local test = require "lubeck.test"
local cjson = require "cjson"

local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
local APP = here .. "apps/request"

describe("the request", function()
    local c
    setup(function() c = test.client(APP) end)
    teardown(function() c:close() end)

    local function get(method, path, opts)
        local r = c:request(method, path, opts)
        assert.are.equal(200, r.status, r.body)
        return cjson.decode(r.body)
    end

    it("carries the fields docs/reference.md lists", function()
        local r = get("GET", "/fields/42?x=1&y=2")
        assert.are.equal("GET", r.method)
        assert.are.equal("/fields/42", r.path)
        assert.are.equal("x=1&y=2", r.query)
        assert.are.equal("/fields/42?x=1&y=2", r.uri)
        assert.are.equal("HTTP/1.1", r.version)
        assert.are.equal("127.0.0.1", r.remote_addr)
        assert.are.equal("number", type(r.conn_id))
        assert.is_string(r.sender)
        assert.are.same({ id = "42" }, r.params)
        assert.are.equal("42", r.id)
    end)

    it("has an empty query string when there is none", function()
        assert.are.equal("", get("GET", "/fields/1").query)
    end)

    describe("arguments", function()
        it("come from the query; the last value of a name wins", function()
            local r = get("GET", "/args?one=1&one=2&many=a&many=b")
            assert.are.equal("2", r.one)
            assert.are.same({ "a", "b" }, r.list)
            assert.are.same({ one = "2", many = "b" }, r.args)
        end)

        it("missing: nil, or the default", function()
            local r = get("GET", "/args")
            assert.is_nil(r.missing)
            assert.are.equal("fallback", r.default)
            assert.are.same({}, r.empty_list)
        end)

        it("come from an urlencoded form after the query", function()
            local r = get("POST", "/args?one=q&many=a", { form = { one = "f", many = { "b", "c" } } })
            assert.are.equal("f", r.one)
            assert.are.same({ "a", "b", "c" }, r.list)
            assert.are.same({ one = "f", many = "c" }, r.args)
        end)

        it("ignore a body that is not a form", function()
            local r = get("POST", "/args?one=q", { body = "one=z", headers = { ["Content-Type"] = "text/plain" } })
            assert.are.equal("q", r.one)
        end)

        it("read one at a time: last value, decoded names, defaults", function()
            local r = get("GET", "/one-arg?one=1&a%20b=x&one=2+3")
            assert.are.same({ one = "2 3", enc = "x", default = "dflt" }, r)
        end)

        it("takes a number for a name, as the string it reads as", function()
            assert.are.same({ arg = "x", cookie = "y" },
                get("GET", "/number-name?7=x", { headers = { cookie = "7=y" } }))
        end)

        it("reads values longer than any buffer on the stack", function()
            local long = string.rep("x", 100000)
            assert.are.same({ n = 100000 }, get("GET", "/long-query?a=1&long=" .. long))
        end)

        it("are percent- and plus-decoded", function()
            local r = get("GET", "/args?one=a%20b+c%26d&many=%E2%9C%93")
            assert.are.equal("a b c&d", r.one)
            assert.are.same({ "\226\156\147" }, r.list)
        end)
    end)

    describe("json()", function()
        it("decodes the body", function()
            assert.are.same({ value = { a = { 1, 2 }, b = "x" } }, get("POST", "/json", { json = { a = { 1, 2 }, b = "x" } }))
        end)

        it("gives nil, err for a bad or empty body", function()
            local bad = get("POST", "/json", { body = "{bad" })
            assert.is_nil(bad.value)
            assert.matches("^invalid JSON", bad.err)
            assert.are.same({ err = "empty body" }, get("POST", "/json"))
        end)

        it("gives nil, err for JSON that is not UTF-8 (RFC 8259)", function()
            for _, body in ipairs({ '"\255\254"', '"\192\175"', '"\237\160\128"', '["\128"]' }) do
                local r = get("POST", "/json", { body = body })
                assert.is_nil(r.value, body)
                assert.are.equal("invalid JSON: the body is not UTF-8", r.err)
            end
            assert.are.same({ value = "\226\156\147" }, get("POST", "/json", { body = '"\226\156\147"' }))
        end)

        it("never gives a value for what is not JSON", function()
            for _, body in ipairs({ "nan", "[Infinity]", "0x10", "01", "-inf", "{}x", "\"\\ud800\"" }) do
                local r = get("POST", "/json", { body = body })
                assert.is_nil(r.value, body)
                assert.matches("^invalid JSON", r.err)
            end
        end)
    end)

    describe("cookies", function()
        it("are read by name", function()
            local r = get("GET", "/cookies", { headers = { Cookie = "a=1; b=two words" } })
            assert.are.equal("1", r.a)
            assert.are.equal("two words", r.b)
            assert.is_nil(r.missing)
            assert.are.same({ a = "1", b = "two words" }, r.all)
        end)

        it("from several Cookie headers make one jar", function()
            local r = get("GET", "/cookies", { headers = { cookie = { "a=1", "b=2" } } })
            assert.are.same({ a = "1", b = "2" }, r.all)
        end)

        it("read one at a time: the first of a name, across Cookie headers", function()
            local r = get("GET", "/one-cookie", { headers = { cookie = { "a=1; b=2", "a=3" } } })
            assert.are.same({ a = "1", b = "2" }, r)
        end)

        it("are none without a Cookie header", function()
            assert.are.same({ all = {} }, get("GET", "/cookies"))
        end)
    end)

    describe("kept past its end", function()
        it("raises 'this request has ended' from arg and cookie", function()
            assert.are.equal("kept", c:get("/keep?one=1").body)
            local r = get("GET", "/use-kept?one=2")
            assert.matches("this request has ended", r.arg)
            assert.matches("this request has ended", r.cookie)
        end)
    end)

    describe("headers", function()
        it("are looked up case-insensitively", function()
            local r = get("GET", "/headers", { headers = { ["X-Thing"] = "v" } })
            assert.are.equal("v", r.upper)
            assert.are.equal("v", r.lower)
            assert.are.equal("v", r.mixed)
            assert.are.equal("v", r.call)
            assert.are.equal("localhost", r.host)
            assert.is_nil(r.absent)
        end)

        it("repeated: a list in req.headers, joined with ', ' by req:header", function()
            local r = get("GET", "/headers", { headers = { ["X-Multi"] = { "m1", "m2" } } })
            assert.are.same({ "m1", "m2" }, r.multi_field)
            assert.are.equal("m1, m2", r.multi_joined)
        end)
    end)

    it("keeps the body byte for byte", function()
        local body = "raw\0bytes\r\n\255"
        local r = get("POST", "/body", { body = body })
        assert.are.equal(body, r.body)
        assert.are.equal(#body, r.length)
    end)
end)
