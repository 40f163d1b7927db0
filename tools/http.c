/* HTTP/1.1 for `tern serve http`: GET and HEAD of files under one directory. */
#include "http.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static bool is_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The end of the head: the empty line (CRLF CRLF, or bare LF as RFC 9112 §2.2 allows). */
static size_t head_end(const char *buf, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (buf[i + 1] == '\n')
			return i + 2;
		if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* One line of the head: [p, end) without its CRLF. */
static const char *next_line(const char *p, const char *lim, const char **end)
{
	const char *nl = memchr(p, '\n', (size_t)(lim - p));
	if (!nl)
		return NULL;
	*end = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
	return nl + 1;
}

static bool token_eq(const char *a, size_t n, const char *b)
{
	return strlen(b) == n && strncasecmp(a, b, n) == 0;
}

/* Does a comma-separated header value hold the token? */
static bool list_has(const char *v, const char *end, const char *tok)
{
	while (v < end) {
		while (v < end && (*v == ' ' || *v == '\t' || *v == ','))
			v++;
		const char *s = v;
		while (v < end && *v != ',')
			v++;
		const char *e = v;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (token_eq(s, (size_t)(e - s), tok))
			return true;
	}
	return false;
}

int http_parse_request(const char *buf, size_t len, struct http_req *req)
{
	size_t hl = head_end(buf, len);
	if (!hl)
		return len >= HTTP_MAX_HEAD ? -431 : 0;
	if (hl > HTTP_MAX_HEAD)
		return -431;
	memset(req, 0, sizeof(*req));
	const char *lim = buf + hl, *end;
	const char *p = buf;
	/* RFC 9112 §2.2: empty lines before the request line are ignored. */
	while (p < lim && (*p == '\r' || *p == '\n'))
		p++;
	const char *next = next_line(p, lim, &end);
	if (!next)
		return -400;
	/* request-line = method SP request-target SP HTTP-version */
	const char *sp1 = memchr(p, ' ', (size_t)(end - p));
	if (!sp1 || sp1 == p)
		return -400;
	for (const char *c = p; c < sp1; c++)
		if (!is_tchar(*c))
			return -400;
	const char *target = sp1 + 1;
	const char *sp2 = memchr(target, ' ', (size_t)(end - target));
	if (!sp2 || sp2 == target)
		return -400;
	const char *ver = sp2 + 1;
	if (end - ver != 8 || memcmp(ver, "HTTP/", 5) || ver[6] != '.' || ver[5] < '0' ||
	    ver[5] > '9' || ver[7] < '0' || ver[7] > '9')
		return -400;
	if (ver[5] != '1')
		return -505;
	req->minor = ver[7] - '0';
	if (token_eq(p, (size_t)(sp1 - p), "GET") && !memcmp(p, "GET", 3))
		req->head = false;
	else if (token_eq(p, (size_t)(sp1 - p), "HEAD") && !memcmp(p, "HEAD", 4))
		req->head = true;
	else
		return -501;
	/* origin-form only: "/path?query" (absolute-form would name another host). */
	if (*target != '/')
		return -400;
	size_t o = 0;
	for (const char *c = target; c < sp2; c++) {
		if (*c == '?' || *c == '#')
			break;
		if ((unsigned char)*c <= ' ' || *c == 0x7f)
			return -400;
		char v = *c;
		if (v == '%') {
			int h = c + 2 < sp2 ? hexval(c[1]) : -1, l = h >= 0 ? hexval(c[2]) : -1;
			if (h < 0 || l < 0)
				return -400;
			v = (char)(h * 16 + l);
			if (!v)
				return -400;
			c += 2;
		}
		if (o + 1 >= sizeof(req->path))
			return -414;
		req->path[o++] = v;
	}
	req->path[o] = 0;
	/* Headers: name ":" OWS value OWS, no whitespace before the colon (RFC 9112 §5.1). */
	bool close = false, keep = false;
	for (p = next; p < lim; p = next) {
		next = next_line(p, lim, &end);
		if (!next || end == p)
			break;
		const char *colon = memchr(p, ':', (size_t)(end - p));
		if (!colon || colon == p)
			return -400;
		for (const char *c = p; c < colon; c++)
			if (!is_tchar(*c))
				return -400;
		const char *v = colon + 1;
		while (v < end && (*v == ' ' || *v == '\t'))
			v++;
		size_t nl = (size_t)(colon - p);
		if (token_eq(p, nl, "Connection")) {
			close |= list_has(v, end, "close");
			keep |= list_has(v, end, "keep-alive");
		} else if (token_eq(p, nl, "Transfer-Encoding")) {
			return -400;
		} else if (token_eq(p, nl, "Content-Length")) {
			const char *e = end;
			while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if (e - v != 1 || *v != '0')
				return -400;
		}
	}
	/* RFC 9112 §9.3: 1.1 persists unless "close"; 1.0 only with "keep-alive". */
	req->keep_alive = req->minor >= 1 ? !close : (keep && !close);
	return (int)hl;
}

const char *http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 414: return "URI Too Long";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	case 505: return "HTTP Version Not Supported";
	default: return "Error";
	}
}

const char *http_content_type(const char *name)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
		{"txt", "text/plain; charset=utf-8"}, {"css", "text/css"},
		{"js", "text/javascript"}, {"json", "application/json"},
		{"png", "image/png"}, {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"},
		{"gif", "image/gif"}, {"svg", "image/svg+xml"}, {"pdf", "application/pdf"},
		{"pcap", "application/vnd.tcpdump.pcap"},
	};
	const char *dot = strrchr(name, '.');
	const char *slash = strrchr(name, '/');
	if (dot && (!slash || dot > slash))
		for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if (!strcasecmp(dot + 1, types[i].ext))
				return types[i].type;
	return "application/octet-stream";
}

size_t http_head(char *buf, size_t n, int status, uint64_t length, const char *type,
		 bool keep_alive)
{
	int k = snprintf(buf, n,
			 "HTTP/1.1 %d %s\r\nServer: tern\r\nContent-Length: %llu\r\n"
			 "Content-Type: %s\r\nConnection: %s\r\n\r\n",
			 status, http_reason(status), (unsigned long long)length, type,
			 keep_alive ? "keep-alive" : "close");
	return k > 0 && (size_t)k < n ? (size_t)k : 0;
}

/* Append to a growing string; false when out of memory. */
static bool sb_add(char **s, size_t *len, size_t *cap, const char *t, size_t n)
{
	if (*len + n + 1 > *cap) {
		size_t c = (*cap ? *cap : 1024);
		while (c < *len + n + 1)
			c *= 2;
		char *r = realloc(*s, c);
		if (!r)
			return false;
		*s = r;
		*cap = c;
	}
	memcpy(*s + *len, t, n);
	*len += n;
	(*s)[*len] = 0;
	return true;
}

static bool sb_add_escaped(char **s, size_t *len, size_t *cap, const char *t)
{
	for (; *t; t++) {
		const char *e = *t == '<' ? "&lt;" : *t == '>' ? "&gt;" : *t == '&' ? "&amp;"
			      : *t == '"' ? "&quot;" : NULL;
		if (!(e ? sb_add(s, len, cap, e, strlen(e)) : sb_add(s, len, cap, t, 1)))
			return false;
	}
	return true;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A listing of dir (already inside the root) for the request path. */
static int listing(const char *dir, const char *path, struct http_file *out)
{
	DIR *d = opendir(dir);
	if (!d)
		return -403;
	char **names = NULL;
	size_t n = 0, capn = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		if (n == capn) {
			capn = capn ? capn * 2 : 64;
			char **r = realloc(names, capn * sizeof(*r));
			if (!r)
				break;
			names = r;
		}
		if (!(names[n] = strdup(e->d_name)))
			break;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_names);
	char *s = NULL;
	size_t len = 0, cap = 0;
	bool ok = sb_add(&s, &len, &cap, "<!DOCTYPE html>\n<title>", 23) &&
		  sb_add_escaped(&s, &len, &cap, path) && sb_add(&s, &len, &cap, "</title>\n<ul>\n", 14);
	/* Links absolute, so that they hold whether or not the request ended in a slash. */
	bool slash = *path && path[strlen(path) - 1] == '/';
	for (size_t i = 0; ok && i < n; i++)
		ok = sb_add(&s, &len, &cap, "<li><a href=\"", 13) &&
		     sb_add_escaped(&s, &len, &cap, path) &&
		     (slash || sb_add(&s, &len, &cap, "/", 1)) &&
		     sb_add_escaped(&s, &len, &cap, names[i]) && sb_add(&s, &len, &cap, "\">", 2) &&
		     sb_add_escaped(&s, &len, &cap, names[i]) && sb_add(&s, &len, &cap, "</a>\n", 5);
	ok = ok && sb_add(&s, &len, &cap, "</ul>\n", 6);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	if (!ok) {
		free(s);
		return -500;
	}
	out->fd = -1;
	out->body = s;
	out->size = len;
	out->type = "text/html; charset=utf-8";
	return 0;
}

/* Is p equal to root or below it? */
static bool inside(const char *root, const char *p)
{
	size_t n = strlen(root);
	return strncmp(p, root, n) == 0 && (p[n] == 0 || p[n] == '/' || (n == 1 && root[0] == '/'));
}

int http_open(const char *root, const char *path, struct http_file *out)
{
	memset(out, 0, sizeof(*out));
	out->fd = -1;
	/* No segment may be "..": the path is taken as it is, not normalized. */
	for (const char *s = path; *s;) {
		while (*s == '/')
			s++;
		const char *e = strchr(s, '/');
		size_t n = e ? (size_t)(e - s) : strlen(s);
		if (n == 2 && s[0] == '.' && s[1] == '.')
			return -403;
		s += n;
	}
	char full[PATH_MAX + HTTP_MAX_PATH];
	if ((size_t)snprintf(full, sizeof(full), "%s/%s", root, path) >= sizeof(full))
		return -404;
	char real[PATH_MAX];
	if (!realpath(full, real))
		return errno == EACCES ? -403 : -404;
	/* A symbolic link may still point outside: what it resolves to must lie inside. */
	if (!inside(root, real))
		return -403;
	struct stat sb;
	if (stat(real, &sb) < 0)
		return -404;
	if (S_ISDIR(sb.st_mode)) {
		char idx[PATH_MAX + 16];
		snprintf(idx, sizeof(idx), "%s/index.html", real);
		char ireal[PATH_MAX];
		if (realpath(idx, ireal) && inside(root, ireal) && stat(ireal, &sb) == 0 &&
		    S_ISREG(sb.st_mode)) {
			memcpy(real, ireal, sizeof(real));
		} else {
			return listing(real, path, out);
		}
	}
	if (!S_ISREG(sb.st_mode))
		return -403;
	int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == EACCES ? -403 : -404;
	if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return -403;
	}
	out->fd = fd;
	out->size = (uint64_t)sb.st_size;
	out->type = http_content_type(real);
	return 0;
}

void http_file_close(struct http_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	free(f->body);
	f->fd = -1;
	f->body = NULL;
}
