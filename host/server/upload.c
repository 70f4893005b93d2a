/* Mongrel2 async uploads (docs/protocol.md, Uploads): bodies above limits.content_length
 * arrive as a file in the upload store, announced by two messages. */
#define _GNU_SOURCE
#include "host.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* An async upload announces itself before the body is on disk; only the
 * second message, with upload-done, is a request to answer. A client can send
 * the header itself (Mongrel2 overwrites it only on a real upload), so the
 * notice is recognised by its shape too: a body is announced but none came. */
int host_is_upload_start(const m2_request *m)
{
    if (!m->upload_start.p || m->upload_done.p || m->body.n != 0) return 0;
    const m2_header *len = m2_header_get(m, "content-length", 14);
    if (len && !(len->value.n == 1 && len->value.p[0] == '0')) return 1;
    return m2_header_get(m, "transfer-encoding", 17) != NULL;
}

static int set_real_path(char **field, const char *path)
{
    char real[PATH_MAX];
    if (!path || !realpath(path, real)) return -1;
    char *copy = strdup(real);
    if (!copy) return -1;
    free(*field);
    *field = copy;
    return 0;
}

int host_set_upload_dir(lubeck *h, const char *dir, const char *m2_chroot)
{
    if (set_real_path(&h->upload_dir, dir) != 0) return -1;
    if (!m2_chroot) {
        free(h->upload_chroot);
        h->upload_chroot = NULL;
        return 0;
    }
    return set_real_path(&h->upload_chroot, m2_chroot);
}

/* The real path of a path Mongrel2 named: inside its chroot, when it has one
 * (a relative path is relative to it too: Mongrel2 runs from there). */
static int upload_real_path(const lubeck *h, slice named, char *out)
{
    char path[PATH_MAX];
    int n = h->upload_chroot
        ? snprintf(path, sizeof path, "%s%s%.*s", h->upload_chroot, named.p[0] == '/' ? "" : "/",
                   (int)named.n, named.p)
        : snprintf(path, sizeof path, "%.*s", (int)named.n, named.p);
    if (n < 0 || (size_t)n >= sizeof path) return -1;
    return realpath(path, out) ? 0 : -1;
}

/* A message with x-mongrel2-upload-done names a file for the handler. A client
 * can send that header itself, so the file is taken only when start and done
 * agree, it is a regular file inside the upload folder, and its size is the
 * request's Content-Length. Returns NULL (r->upload_path set) or why not. */
const char *host_upload_accept(lubeck *h, lbk_req *r)
{
    slice start = r->m2.upload_start, done = r->m2.upload_done;
    if (!h->upload_dir) return "no upload folder is configured (lubeck run --upload-dir DIR)";
    if (!start.p || start.n != done.n || memcmp(start.p, done.p, done.n) != 0)
        return "x-mongrel2-upload-start and x-mongrel2-upload-done differ";
    char real[PATH_MAX];
    if (done.n == 0 || done.n >= PATH_MAX || memchr(done.p, '\0', done.n)) return "bad upload path";
    size_t dl = strlen(h->upload_dir);
    struct stat st;
    if (upload_real_path(h, done, real) != 0 || strncmp(real, h->upload_dir, dl) != 0 || real[dl] != '/')
        return "the upload path is not inside the upload folder";
    if (lstat(real, &st) != 0 || !S_ISREG(st.st_mode)) return "the upload is not a regular file";
    const m2_header *cl = m2_header_get(&r->m2, "content-length", 14);
    if (cl) {
        char num[32];
        size_t n = cl->value.n < sizeof num - 1 ? cl->value.n : sizeof num - 1;
        memcpy(num, cl->value.p, n);
        num[n] = '\0';
        char *end;
        unsigned long long want = strtoull(num, &end, 10);
        if (end == num || *end || (unsigned long long)st.st_size != want)
            return "the upload's size is not its Content-Length";
    }
    r->upload_path = strdup(real);
    return r->upload_path ? NULL : "out of memory";
}
