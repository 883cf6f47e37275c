/* The research bench's zlib program: for each file given, compresses it
 * with deflate at levels 1, 6 and 9 and with gzip framing, inflates each
 * result and checks it equals the input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "zlib.h"

static unsigned char *slurp(const char *path, unsigned long *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static int roundtrip(const unsigned char *data, unsigned long len, int level, int window) {
    z_stream d = {0}, i = {0};
    unsigned long cap = deflateBound(&d, len) + 64;
    unsigned char *packed = malloc(cap), *back = malloc(len + 1);
    if (deflateInit2(&d, level, Z_DEFLATED, window, 8, Z_DEFAULT_STRATEGY) != Z_OK) return 1;
    d.next_in = (unsigned char *)data;
    d.avail_in = (uInt)len;
    d.next_out = packed;
    d.avail_out = (uInt)cap;
    if (deflate(&d, Z_FINISH) != Z_STREAM_END) return 1;
    unsigned long packed_len = d.total_out;
    deflateEnd(&d);
    if (inflateInit2(&i, window) != Z_OK) return 1;
    i.next_in = packed;
    i.avail_in = (uInt)packed_len;
    i.next_out = back;
    i.avail_out = (uInt)(len + 1);
    int r = inflate(&i, Z_FINISH);
    inflateEnd(&i);
    int bad = r != Z_STREAM_END || i.total_out != len || memcmp(back, data, len) != 0;
    printf("level %d window %d: %lu -> %lu%s\n", level, window, len, packed_len, bad ? " MISMATCH" : "");
    free(packed);
    free(back);
    return bad;
}

int main(int argc, char **argv) {
    int bad = 0;
    for (int a = 1; a < argc; a++) {
        unsigned long len = 0;
        unsigned char *data = slurp(argv[a], &len);
        if (!data) {
            fprintf(stderr, "%s: cannot read\n", argv[a]);
            return 2;
        }
        bad |= roundtrip(data, len, 1, 15);
        bad |= roundtrip(data, len, 6, 15);
        bad |= roundtrip(data, len, 9, 31); /* gzip framing */
        printf("crc32 %08lx adler32 %08lx\n", crc32(0L, data, (uInt)len), adler32(1L, data, (uInt)len));
        free(data);
    }
    return bad;
}
