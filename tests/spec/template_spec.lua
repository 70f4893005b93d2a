-- lubeck.template as etlua is used: the cases etlua's own spec checks (in
-- lubeck's words), plus lubeck's error lines.
local template = require "lubeck.template"
local render, compile = template.render, template.compile

describe("lubeck.template, etlua's way", function()
    local cases = {
        { "plain text", "plain text" },
        { "<p>sea-lion</p>", "<p><%= animal %></p>", { animal = "sea-lion" } },
        { "[1][2][3]!", "<% for n = 1, 3 do %>[<%= n %>]<% end %>!" },
        -- a "%>" inside a Lua string does not end the tag
        { "a%&gt;b", [[<%= "a%>b" %>]] },
        { "a%>b", [[<%- 'a%>b' %>]] },
        { "x %&gt; &quot;y&quot;", [==[<%= [=[x %> "y"]=] %>]==] },
        { "it&#39;s", [[<%= "it's" %>]] },
        { "ok", "<% -- a comment with an apostrophe: don't %>ok" },
        { "hi", "<%= 'hi' -%>\n" },
        -- names missing from the environment come from _G
        { "number", "<% assert(n) %><%= type(n) %>", { n = 1 } },
        { "TEXT", "<%= string.upper(s) %>", { s = "text" } },
    }
    for _, case in ipairs(cases) do
        it("renders " .. string.format("%q", case[2]), function()
            assert.are.equal(case[1], render(case[2], case[3]))
        end)
    end

    it("renders a page of loops, conditions and trimmed newlines", function()
        local source = table.concat({
            "Dear <%= who %>,",
            "<% if missing then %>",
            "  never shown",
            "<% end %>",
            "<% for i = 1, 3 do %>",
            "  line <%= i -%>",
            "<% end %>",
            "bye <%= [=[now %>]=] %>",
        }, "\n")
        assert.are.equal("Dear you,\n\n\n  line 1\n  line 2\n  line 3\nbye now %&gt;",
                         render(source, { who = "you" }))
    end)

    it("returns nil, err for an unclosed tag", function()
        local out, err = render("hello <%= world")
        assert.is_nil(out)
        assert.matches("unclosed <%= tag", err, 1, true)
        assert.is_nil((render([[<%= "never closed %>]])))
    end)

    it("returns nil, err for a bad interpolation and for bad code", function()
        local out, err = render("hello <%= if x then print(1) end %>")
        assert.is_nil(out)
        assert.is_string(err)
        local fn, cerr = compile("line one\nline two\n  hello <% what is this %>\nline four")
        assert.is_nil(fn)
        assert.matches("^template:3:", cerr)
    end)

    it("appends to a buffer it is given", function()
        local fn = assert(compile("hello<%= 'yeah' %>"))
        local buffer = { "first" }
        assert.are.equal("firsthelloyeah", fn({}, buffer, #buffer))
    end)

    it("runs one compiled template many times with different environments", function()
        local fn = assert(compile("<%= a %>+<%= b %>"))
        assert.are.equal("1+2", fn({ a = 1, b = 2 }))
        assert.are.equal("x+y", fn({ a = "x", b = "y" }))
    end)

    it("names the template line of a runtime error", function()
        local fn = assert(compile("one\ntwo\n<%= thing.field %>\nfour", "page.html"))
        local ok, err = pcall(fn, {})
        assert.is_false(ok)
        assert.matches("^page.html:3:", err)
    end)

    it("keeps line numbers after a string holding %> and a comment", function()
        local fn = assert(compile("<%= '%>' %>\n<% -- note %>\n<%= nope.x %>", "lines.html"))
        local ok, err = pcall(fn, {})
        assert.is_false(ok)
        assert.matches("^lines.html:3:", err)
    end)
    describe("etlua's Parser", function()
        local Parser = require("lubeck.template").Parser

        it("compiles, loads and runs pieces into one buffer", function()
            local parser = Parser()
            local greet = assert(parser:load(assert(parser:compile_to_lua("Good <%= when %>, "))))
            local name = assert(parser:load(assert(parser:compile_to_lua("<%- who %>!"))))
            local buffer = {}
            parser:run(greet, { when = "day" }, buffer, #buffer)
            parser:run(name, { who = "<ada>" }, buffer, #buffer)
            assert.are.equal("Good day, <ada>!", table.concat(buffer))
        end)

        it("gives nil, err for a template that does not compile", function()
            local code, err = Parser.new():compile_to_lua("a <%= b")
            assert.is_nil(code)
            assert.matches("unclosed", err)
        end)

        it("tells whether a string is left open", function()
            assert.is_false(Parser.in_string({ str = "plain words" }, 1))
            assert.is_true(Parser.in_string({ str = "it's open" }, 1))
            assert.is_true(Parser.in_string({ str = [[say "a \" b]] }, 1))
            assert.is_false(Parser.in_string({ str = "x [==[ it's ]==] y" }, 1))
            assert.is_true(Parser.in_string({ str = "x [[ never closed" }, 1))
            assert.is_false(Parser.in_string({ str = "'done' then" }, 1))
        end)
    end)
end)
