/* podnet's compiled CNI front door: installed as podnet-cni and podnet-ipam.
 *
 * Why C: a runtime starts the plugin once per pod, and CPython's start-up alone costs more
 * than the whole call to the node's warm podnet CNI server. This program does what
 * cni/shim.py does, in the same protocol, without an interpreter:
 *
 *   connect to the abstract socket @podnet-cni (per network namespace, so a plugin always
 *   reaches the server of the node it runs on), send one request built whole in memory,
 *   relay the reply's stdout and exit status.
 *
 *   request: plugin name, '\n', 4-byte big-endian length of the environment block, the
 *            block (NUL-separated KEY=VALUE), then stdin to end of stream.
 *            PODNET_CNI_STDIN_LENGTH in the block lets the server tell a complete request
 *            from one cut short by our death (both end in end-of-stream).
 *   reply:   one byte of exit status, then the plugin's stdout.
 *
 * When no server listens (the connect itself fails), it executes the Python launcher
 * installed beside it as <name>-python, with stdin untouched: the same work, slower. Once
 * connected it never falls back: the request may have reached the server, and running it
 * here too could do it twice. A server that dies mid-call gets CNI code 11 ("try again").
 *
 * Built at install time by cni/frontdoor.py with -DPODNET_PLUGIN="podnet-cni" (or ipam).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef PODNET_PLUGIN
#error "build with -DPODNET_PLUGIN=\"podnet-cni\" or \"podnet-ipam\""
#endif

#define SOCKET_NAME "podnet-cni"
#define STDIN_LENGTH_VAR "PODNET_CNI_STDIN_LENGTH"
#define FALLBACK_SUFFIX "-python"

extern char **environ;

struct buf {
    char *data;
    size_t len, cap;
};

/* Answer in CNI's error JSON and stop; nothing half-built is ever sent. */
static void die(int code, const char *msg, const char *detail)
{
    printf("{\"cniVersion\": \"1.1.0\", \"code\": %d, \"msg\": \"" PODNET_PLUGIN ": %s%s%s%s\"}\n", code, msg,
           detail ? ": " : "", detail ? detail : "", code == 11 ? "; try again" : "");
    fflush(stdout);
    exit(1);
}

static void reserve(struct buf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more) {
        if (cap > SIZE_MAX / 2)
            die(5, "request too large", NULL);
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (!data)
        die(5, "out of memory", NULL);
    b->data = data;
    b->cap = cap;
}

static void append(struct buf *b, const void *data, size_t len)
{
    if (len == 0)
        return; /* also spares memcpy a NULL source (an empty stdin) */
    reserve(b, len);
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

/* Read fd to end of stream, growing the buffer as needed; returns 0, or an errno. */
static int read_all(int fd, struct buf *b)
{
    for (;;) {
        reserve(b, 65536);
        ssize_t n = read(fd, b->data + b->len, b->cap - b->len);
        if (n == 0)
            return 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        b->len += (size_t)n;
    }
}

static int write_all(int fd, const char *data, size_t len, int is_socket)
{
    while (len) {
        /* MSG_NOSIGNAL: a server gone mid-call is an error to report, not SIGPIPE. */
        ssize_t n = is_socket ? send(fd, data, len, MSG_NOSIGNAL) : write(fd, data, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int connect_server(void)
{
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    /* Abstract name: a leading NUL, and the address length counts only the name's bytes. */
    memcpy(addr.sun_path + 1, SOCKET_NAME, sizeof SOCKET_NAME - 1);
    socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + sizeof SOCKET_NAME - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    while (connect(fd, (struct sockaddr *)&addr, len) < 0) {
        if (errno == EINTR)
            continue;
        close(fd);
        return -1;
    }
    return fd;
}

/* No server: become the Python plugin (the launcher beside our own executable). */
static void run_locally(char **argv)
{
    struct buf path = {0};
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    const char *dir_end;
    if (n > 0) {
        self[n] = '\0';
        dir_end = strrchr(self, '/');
        append(&path, self, dir_end ? (size_t)(dir_end - self) + 1 : 0);
    } else {
        /* No /proc: fall back on the path we were executed by, as runtimes give it in full. */
        dir_end = strrchr(argv[0], '/');
        append(&path, argv[0], dir_end ? (size_t)(dir_end - argv[0]) + 1 : 0);
    }
    append(&path, PODNET_PLUGIN FALLBACK_SUFFIX, sizeof PODNET_PLUGIN FALLBACK_SUFFIX);
    char *args[] = {path.data, NULL};
    execv(path.data, args);
    die(999, "no podnet CNI server listens here and the Python plugin cannot run", strerror(errno));
}

static int is_version_call(void)
{
    const char *cmd = getenv("CNI_COMMAND");
    return cmd && strcmp(cmd, "VERSION") == 0;
}

int main(int argc, char **argv)
{
    (void)argc;
    int sock = connect_server();
    if (sock < 0)
        run_locally(argv); /* does not return */

    /* Connected: from here on, every failure is answered, never retried locally. */
    struct buf in = {0};
    int err = 0;
    /* VERSION needs no config, and some callers never close stdin for it (as cni/shim.py). */
    if (!is_version_call() && (err = read_all(0, &in)) != 0)
        die(5, "reading stdin failed", strerror(err)); /* nothing sent: the server runs nothing */

    struct buf req = {0};
    append(&req, PODNET_PLUGIN "\n\0\0\0\0", sizeof PODNET_PLUGIN + 4);
    size_t env_start = req.len;
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, STDIN_LENGTH_VAR "=", sizeof STDIN_LENGTH_VAR) == 0)
            continue; /* ours to set, never inherited */
        append(&req, *e, strlen(*e));
        append(&req, "", 1);
    }
    char stdin_len[64];
    int w = snprintf(stdin_len, sizeof stdin_len, STDIN_LENGTH_VAR "=%zu", in.len);
    append(&req, stdin_len, (size_t)w); /* the last item: no separator after it */
    size_t env_len = req.len - env_start;
    if (env_len > UINT32_MAX)
        die(5, "environment too large for the protocol", NULL);
    unsigned char *size = (unsigned char *)req.data + env_start - 4;
    size[0] = (unsigned char)(env_len >> 24);
    size[1] = (unsigned char)(env_len >> 16);
    size[2] = (unsigned char)(env_len >> 8);
    size[3] = (unsigned char)env_len;
    append(&req, in.data, in.len);
    free(in.data);

    const char *reason = "the server closed the connection without an answer";
    struct buf reply = {0};
    if ((err = write_all(sock, req.data, req.len, 1)) != 0 || shutdown(sock, SHUT_WR) < 0 ||
        (err = read_all(sock, &reply)) != 0) {
        reason = strerror(err ? err : errno);
        reply.len = 0;
    }
    close(sock);
    free(req.data);
    if (reply.len == 0)
        die(11, "podnet CNI server failed", reason); /* reached the server: never run it twice */
    int status = (unsigned char)reply.data[0];
    if (write_all(1, reply.data + 1, reply.len - 1, 0) != 0)
        status = 1;
    free(reply.data);
    return status;
}
