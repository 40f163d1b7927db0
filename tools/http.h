/* The small HTTP/1.1 server behind `tern serve http`: request heads parsed without trusting
 * them (RFC 9112), paths resolved strictly inside one directory, response heads built. */
#ifndef TERN_HTTP_H
#define TERN_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEAD 8192 /* the longest request head taken (431 beyond) */
#define HTTP_MAX_PATH 1024

struct http_req {
	bool head;           /* HEAD, else GET */
	int minor;           /* HTTP/1.minor */
	bool keep_alive;     /* the connection stays open after the response */
	char path[HTTP_MAX_PATH]; /* percent-decoded, without query or fragment */
};

/*
 * Parse the request head at the start of buf. Returns its length (> 0) when complete, 0
 * when more bytes are needed, or a negative HTTP status when it cannot be served: -400
 * (malformed), -431 (head too long), -501 (a method other than GET and HEAD), -505 (not
 * HTTP/1.x), -414 (path too long). A request with a body (Content-Length other than 0, or
 * Transfer-Encoding) is refused with -400: GET and HEAD take none here.
 */
int http_parse_request(const char *buf, size_t len, struct http_req *req);

struct http_file {
	int fd;              /* open for reading; -1 for a generated body */
	uint64_t size;
	const char *type;    /* Content-Type */
	char *body;          /* a generated body (directory listing), malloc'd */
};

/*
 * Open what path names inside root (an absolute path with symlinks resolved, no trailing
 * slash): a regular file, or for a directory its index.html or else a listing. Nothing
 * outside root is ever opened: ".." segments are refused and the resolved path must lie
 * inside root. Returns 0, or -403 / -404 / -500.
 */
int http_open(const char *root, const char *path, struct http_file *out);
void http_file_close(struct http_file *f);

const char *http_reason(int status);
const char *http_content_type(const char *name);

/* Write the response head into buf (at most n bytes). Returns its length, or 0 if it does
 * not fit. */
size_t http_head(char *buf, size_t n, int status, uint64_t length, const char *type,
		 bool keep_alive);

#endif
