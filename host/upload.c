/* Mongrel2 async uploads (PROTOCOL.md §4): bodies above limits.content_length
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

int host_set_upload_dir(lubeck *h, const char *dir)
{
    char real[PATH_MAX];
    if (!dir || !realpath(dir, real)) return -1;
    char *copy = strdup(real);
    if (!copy) return -1;
    free(h->upload_dir);
    h->upload_dir = copy;
    return 0;
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
    char path[PATH_MAX], real[PATH_MAX];
    if (done.n == 0 || done.n >= sizeof path || memchr(done.p, '\0', done.n)) return "bad upload path";
    memcpy(path, done.p, done.n);
    path[done.n] = '\0';
    size_t dl = strlen(h->upload_dir);
    struct stat st;
    if (!realpath(path, real) || strncmp(real, h->upload_dir, dl) != 0 || real[dl] != '/')
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
