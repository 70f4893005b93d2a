/* `lubeck new NAME`: a new app folder that serves, passes its spec and checks
 * clean from the first minute. The files are written from the table below;
 * "{{name}}" in them becomes the folder's name. */
#include "new.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct new_file {
    const char *path;
    const char *text;
} new_file;

static const new_file FILES[] = {
    { "app.lua",
      "-- {{name}}: a lubeck app.  lubeck serve {{name}}  then open http://127.0.0.1:6767/\n"
      "local lubeck = require \"lubeck\"\n"
      "\n"
      "local app = lubeck.app{\n"
      "    name = \"{{name}}\",\n"
      "    cookie_secret = os.getenv(\"COOKIE_SECRET\"),   -- signs sessions and secure cookies\n"
      "}\n"
      "\n"
      "-- A page: templates/index.html inside templates/layout.html.\n"
      "app:get(\"/\", function(req)\n"
      "    return app:render(\"index.html\", { layout = \"layout.html\", title = \"{{name}}\" })\n"
      "end)\n"
      "\n"
      "-- JSON: a returned table is sent as application/json.\n"
      "app:get(\"/hello/:name\", function(req, name)\n"
      "    return { greeting = \"Hello, \" .. name }\n"
      "end)\n"
      "\n"
      "return app\n" },
    { "templates/layout.html",
      "<!doctype html>\n"
      "<html lang=\"en\">\n"
      "<head>\n"
      "  <meta charset=\"utf-8\">\n"
      "  <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
      "  <title><%= title %></title>\n"
      "  <link rel=\"icon\" href=\"/static/favicon.svg\">\n"
      "  <link rel=\"stylesheet\" href=\"/static/style.css\">\n"
      "</head>\n"
      "<body>\n"
      "  <main>\n"
      "<%- content %>\n"
      "  </main>\n"
      "</body>\n"
      "</html>\n" },
    { "templates/index.html",
      "<h1><%= title %></h1>\n"
      "<p>It works. This page is <code>templates/index.html</code>, served by the\n"
      "<code>/</code> route in <code>app.lua</code>.</p>\n"
      "<p>JSON too: <a href=\"/hello/world\">/hello/world</a>.</p>\n" },
    { "static/style.css",
      "body { font: 16px/1.5 system-ui, sans-serif; color: #222; background: #fafafa; margin: 0; }\n"
      "main { max-width: 40rem; margin: 3rem auto; padding: 0 1rem; }\n"
      "h1 { font-weight: 600; }\n"
      "code { background: #eee; padding: 0 .2em; border-radius: 3px; }\n"
      "a { color: #0b5fad; }\n" },
    { "static/favicon.svg",
      "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 32 32\">"
      "<rect width=\"32\" height=\"32\" rx=\"6\" fill=\"#0b5fad\"/>"
      "<text x=\"16\" y=\"23\" font-size=\"20\" font-family=\"sans-serif\" text-anchor=\"middle\" "
      "fill=\"#fff\">l</text></svg>\n" },
    { "spec/app_spec.lua",
      "-- Run from the app folder:  busted --lua=luajit\n"
      "-- (lubeck.test runs the app in-process, with no Mongrel2.)\n"
      "local here = debug.getinfo(1, \"S\").source:match(\"^@(.*)/spec/[^/]*$\") or \".\"\n"
      "local client = require(\"lubeck.test\").client(here)\n"
      "\n"
      "describe(\"{{name}}\", function()\n"
      "    it(\"serves its home page\", function()\n"
      "        local res = client:get(\"/\")\n"
      "        assert.are.equal(200, res.status)\n"
      "        assert.truthy(res.body:find(\"<h1>{{name}}</h1>\", 1, true))\n"
      "    end)\n"
      "\n"
      "    it(\"answers JSON\", function()\n"
      "        local res = client:get(\"/hello/you\")\n"
      "        assert.are.equal(200, res.status)\n"
      "        assert.are.equal(\"Hello, you\", require(\"cjson\").decode(res.body).greeting)\n"
      "    end)\n"
      "\n"
      "    it(\"answers 404 for what it does not route\", function()\n"
      "        assert.are.equal(404, client:get(\"/nowhere\").status)\n"
      "    end)\n"
      "end)\n" },
    { ".busted",
      "return { default = { lua = \"luajit\", ROOT = { \"spec\" } } }\n" },
    { ".gitignore",
      "# lubeck serve's run folder: Mongrel2's config, logs, pid and uploads\n"
      ".lubeck/\n" },
    { "README.md",
      "# {{name}}\n"
      "\n"
      "A lubeck app (Lua handlers behind Mongrel2).\n"
      "\n"
      "    lubeck serve {{name}}            # http://127.0.0.1:6767/ (Ctrl-C stops it)\n"
      "    lubeck serve {{name}} --reload   # reloads when a .lua file or a template changes\n"
      "    lubeck check {{name}}            # load it and report problems as file:line\n"
      "    (cd {{name}} && busted)          # run spec/ (through LuaJIT: see .busted)\n"
      "\n"
      "- `app.lua`: the routes.\n"
      "- `templates/`: etlua templates; `layout.html` wraps every page.\n"
      "- `static/`: served by Mongrel2 under `/static/`.\n"
      "- `spec/`: tests with lubeck's test client, no server needed.\n"
      "- `.lubeck/`: serve's run folder (config, logs); not source, ignored by git.\n" },
};
#define NFILES (sizeof FILES / sizeof FILES[0])

/* Writes text to path with every "{{name}}" replaced by name. */
static int write_filled(const char *path, const char *text, const char *name)
{
    FILE *f = fopen(path, "wx");
    if (!f) return -1;
    const char *p = text, *hole;
    while ((hole = strstr(p, "{{name}}"))) {
        fwrite(p, 1, (size_t)(hole - p), f);
        fputs(name, f);
        p = hole + 8;
    }
    fputs(p, f);
    return fclose(f);
}

static int valid_name(const char *name)
{
    if (!*name) return 0;
    for (const char *p = name; *p; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return 0;
    return name[0] != '.';
}

int new_main(cli_options *o)
{
    const char *dir = o->app;
    const char *slash = strrchr(dir, '/');
    const char *name = slash && slash[1] ? slash + 1 : dir;
    if (!valid_name(name)) {
        fprintf(stderr, "lubeck: '%s' is not a good app name (letters, digits, - _ and . only)\n", name);
        return 2;
    }
    if (mkdir(dir, 0755) != 0) {
        if (errno == EEXIST) fprintf(stderr, "lubeck: %s already exists\n", dir);
        else fprintf(stderr, "lubeck: cannot create %s: %s\n", dir, strerror(errno));
        return 1;
    }
    const char *subdirs[] = { "templates", "static", "spec" };
    char path[4096];
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, subdirs[i]);
        if (mkdir(path, 0755) != 0) goto fail;
    }
    for (size_t i = 0; i < NFILES; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, FILES[i].path);
        if (write_filled(path, FILES[i].text, name) != 0) goto fail;
    }
    printf("made %s/: app.lua, templates/, static/, spec/, README.md\n"
           "next:\n  lubeck serve %s     # then open http://127.0.0.1:6767/\n", dir, dir);
    return 0;
fail:
    fprintf(stderr, "lubeck: cannot write %s: %s\n", path, strerror(errno));
    return 1;
}
