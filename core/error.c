/* error.c - status names, per-thread error messages, checked allocation
 * and atomic file writes. */
#include "cnn_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char error_message[512];

const char *cnn_status_name(cnn_status s)
{
    switch (s) {
    case CNN_OK: return "ok";
    case CNN_ERR_ARG: return "invalid argument";
    case CNN_ERR_NOMEM: return "out of memory";
    case CNN_ERR_IO: return "i/o error";
    case CNN_ERR_FORMAT: return "malformed file";
    case CNN_ERR_MODEL: return "inconsistent model";
    case CNN_ERR_LIMIT: return "over a size limit";
    case CNN_ERR_UNSUPPORTED: return "unsupported";
    case CNN_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown status";
}

const char *cnn_last_error(void) { return error_message; }

void cnn_clear_error(void) { error_message[0] = '\0'; }

/* Messages quote names read from untrusted files (tensor names, fields,
 * dtypes) and end up on terminals: control characters, including UTF-8
 * encoded C1 controls (U+0080..U+009F, e.g. CSI), become '?', so that a
 * hostile file can neither send escape sequences nor forge output lines. */
static void defang(char *p)
{
    for (; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f) {
            *p = '?';
        } else if (c == 0xc2 && (unsigned char)p[1] >= 0x80 && (unsigned char)p[1] <= 0x9f) {
            p[0] = p[1] = '?';
            p++;
        }
    }
}

cnn_status cnn_fail(cnn_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    defang(error_message);
    return s;
}

cnn_status cnn_fail_prefix(cnn_status s, const char *fmt, ...)
{
    char prefix[256], old[sizeof error_message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, error_message, sizeof old);
    /* Truncation is fine here: the message is for people. */
    size_t n = strlen(prefix);
    if (n > sizeof error_message - 3) n = sizeof error_message - 3;
    memcpy(error_message, prefix, n);
    memcpy(error_message + n, ": ", 2);
    size_t room = sizeof error_message - n - 2 - 1, m = strlen(old);
    if (m > room) m = room;
    memcpy(error_message + n + 2, old, m);
    error_message[n + 2 + m] = '\0';
    defang(error_message);
    return s;
}

void *cnn_alloc(size_t count, size_t size)
{
    size_t bytes;
    if (!cnn_mul_size(count, size, &bytes)) {
        cnn_fail(CNN_ERR_LIMIT, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p) cnn_fail(CNN_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *cnn_alloc_aligned(size_t count, size_t size)
{
    size_t bytes;
    if (!cnn_mul_size(count, size, &bytes) || bytes > SIZE_MAX - 64) {
        cnn_fail(CNN_ERR_LIMIT, "allocation of %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = NULL;
    if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0) {
        cnn_fail(CNN_ERR_NOMEM, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    memset(p, 0, bytes ? bytes : 64);
    return p;
}

void cnn_free_aligned(void *p) { free(p); }

static int write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* A writer killed between mkstemp() and rename() leaves its temporary
 * file behind, and nothing will ever finish it.  The next successful write
 * of the same file removes such leftovers: regular files named exactly
 * ".BASE.tmp-XXXXXX" in the same folder, last modified at least a minute
 * ago (a younger one may belong to another writer still at work; no write
 * of ours takes that long between two data blocks). */
static void remove_stale_temporaries(const char *dir, const char *base)
{
    DIR *d = opendir(dir);
    if (!d) return;
    size_t blen = strlen(base);
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (n[0] != '.' || strncmp(n + 1, base, blen) != 0 ||
            strncmp(n + 1 + blen, ".tmp-", 5) != 0 || strlen(n + 1 + blen + 5) != 6)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode) ||
            now - st.st_mtime < 60)
            continue;
        (void)unlinkat(dirfd(d), n, 0);
    }
    closedir(d);
}

cnn_status cnn_write_file_atomic(const char *path, const void *const *parts,
                                 const size_t *sizes, int n_parts)
{
    if (!path || !*path || n_parts < 0 || (n_parts > 0 && (!parts || !sizes)))
        return cnn_fail(CNN_ERR_ARG, "write: invalid arguments");

    /* The temporary file lives in the target's folder so rename() is
     * atomic; its name starts with '.' and ends in '.tmp-XXXXXX' so that
     * readers that list '*.safetensors' never see it. */
    const char *slash = strrchr(path, '/');
    size_t dirlen = slash ? (size_t)(slash - path) : 0;
    const char *base = slash ? slash + 1 : path;
    size_t tlen = strlen(path) + 16;
    char *tmp = malloc(tlen);
    char *dir = malloc(dirlen + 2);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        return cnn_fail(CNN_ERR_NOMEM, "out of memory");
    }
    if (slash) {
        memcpy(dir, path, dirlen);
        dir[dirlen] = '\0';
        if (dirlen == 0) strcpy(dir, "/");
        snprintf(tmp, tlen, "%s/.%s.tmp-XXXXXX", dir, base);
    } else {
        strcpy(dir, ".");
        snprintf(tmp, tlen, ".%s.tmp-XXXXXX", base);
    }

    int fd = mkstemp(tmp);
    if (fd < 0) {
        cnn_status s = cnn_fail(CNN_ERR_IO, "%s: cannot create a temporary file in %s: %s",
                                path, dir, strerror(errno));
        free(tmp);
        free(dir);
        return s;
    }
    int err = 0;
    for (int i = 0; i < n_parts && !err; i++)
        if (sizes[i] && write_all(fd, parts[i], sizes[i]) != 0) err = errno;
    if (!err && fchmod(fd, 0644) != 0) err = errno;
    if (!err && fsync(fd) != 0) err = errno;
    if (close(fd) != 0 && !err) err = errno;
    if (!err && rename(tmp, path) != 0) err = errno;
    if (err) {
        unlink(tmp);
        cnn_status s = cnn_fail(CNN_ERR_IO, "%s: write failed: %s", path, strerror(err));
        free(tmp);
        free(dir);
        return s;
    }
    /* Make the rename itself durable. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    remove_stale_temporaries(dir, base);
    free(tmp);
    free(dir);
    return CNN_OK;
}

cnn_status cnn_open_file(const char *path, size_t max_size, FILE **f, size_t *size)
{
    if (!path || !f || !size) return cnn_fail(CNN_ERR_ARG, "read: invalid arguments");
    *f = NULL;
    *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return cnn_fail(CNN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return cnn_fail(CNN_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)st.st_size > (uint64_t)max_size) {
        fclose(fp);
        return cnn_fail(CNN_ERR_LIMIT, "%s: file is %lld bytes, more than the limit of %zu",
                        path, (long long)st.st_size, max_size);
    }
    *f = fp;
    *size = (size_t)st.st_size;
    return CNN_OK;
}

cnn_status cnn_read_bytes(FILE *f, const char *path, void *buf, size_t n)
{
    size_t got = fread(buf, 1, n, f);
    if (got != n || ferror(f))
        return cnn_fail(CNN_ERR_IO, "%s: read error (got %zu of %zu bytes)", path, got, n);
    return CNN_OK;
}

cnn_status cnn_read_file(const char *path, size_t max_size, void **data, size_t *size)
{
    if (!path || !data || !size) return cnn_fail(CNN_ERR_ARG, "read: invalid arguments");
    *data = NULL;
    FILE *f;
    cnn_status s = cnn_open_file(path, max_size, &f, size);
    if (s) return s;
    size_t n = *size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf)
        s = cnn_fail(CNN_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    else
        s = cnn_read_bytes(f, path, buf, n);
    fclose(f);
    if (s) {
        free(buf);
        *size = 0;
        return s;
    }
    *data = buf;
    return CNN_OK;
}
