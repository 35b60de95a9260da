// writer ID N SIZE: N numbered lines of SIZE bytes, one write() each, as fast as it can.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    const char *id = argc > 1 ? argv[1] : "a";
    long n = argc > 2 ? atol(argv[2]) : 1000000;
    long size = argc > 3 ? atol(argv[3]) : 100;
    char *line = malloc(size + 1);
    for (long i = 0; i < n; i++) {
        int head = snprintf(line, size, "%s-%ld-", id, i);
        memset(line + head, 'x', size - 1 - head);
        line[size - 1] = '\n';
        for (ssize_t off = 0; off < size;) {
            ssize_t w = write(1, line + off, size - off);
            if (w <= 0) return 1;
            off += w;
        }
    }
    return 0;
}
