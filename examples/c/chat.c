/* Outpost from C (#24): stream a chat answer, cancel a second one midway
 * from another thread, and redact a prompt with the guard before it would
 * leave the device.
 *
 * Build (from the repository root, after cargo build --release -p outpost-ffi):
 *   cc examples/c/chat.c -Icrates/ffi/include -Ltarget/release -loutpost_ffi \
 *      -lpthread -Wl,-rpath,$PWD/target/release -o /tmp/outpost-chat
 *   /tmp/outpost-chat models/smollm2-135m.gguf
 *
 * It prints one line per step (the test crates/ffi/tests/c_example.rs reads
 * them) and exits non-zero on any failure. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "outpost.h"

static void fail(const char *what) {
    const char *e = outpost_last_error();
    fprintf(stderr, "%s failed: %s\n", what, e ? e : "(no error text)");
    exit(1);
}

/* Collects the streamed answer. */
struct answer {
    char text[8192];
    size_t len;
    int pieces;
};

static int32_t collect(void *user, const char *text, size_t len) {
    struct answer *a = user;
    if (a->len + len < sizeof a->text) {
        memcpy(a->text + a->len, text, len);
        a->len += len;
        a->text[a->len] = '\0';
    }
    __atomic_add_fetch(&a->pieces, 1, __ATOMIC_SEQ_CST);
    return 0; /* go on */
}

/* The second generation runs here while main cancels it. */
struct job {
    const OutpostModel *model;
    const OutpostCancel *cancel;
    struct answer answer;
    int32_t rc;
};

static void *generate_long(void *p) {
    struct job *j = p;
    OutpostGenerateOptions o = {.max_tokens = 200, .greedy = 1, .threads = 2};
    j->rc = outpost_chat(j->model,
                         "[{\"role\": \"user\", \"content\": \"Write a long story about a lighthouse.\"}]",
                         &o, j->cancel, collect, &j->answer);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.gguf\n", argv[0]);
        return 2;
    }
    if (outpost_abi_version() != OUTPOST_ABI_VERSION) {
        fprintf(stderr, "library ABI %u, header ABI %d\n", outpost_abi_version(), OUTPOST_ABI_VERSION);
        return 1;
    }
    printf("abi %u\n", outpost_abi_version());
    char *build = outpost_build_info();
    if (!build) fail("outpost_build_info");
    printf("build: %s\n", build);
    outpost_string_free(build);

    /* A bad path fails with a reason, not a crash. */
    if (outpost_model_open("/nonexistent/model.gguf") != NULL) {
        fprintf(stderr, "a missing model opened\n");
        return 1;
    }
    printf("error: %s\n", outpost_last_error());

    OutpostModel *model = outpost_model_open(argv[1]);
    if (!model) fail("outpost_model_open");

    /* 1. Stream a chat answer. */
    struct answer first = {0};
    OutpostGenerateOptions o = {.max_tokens = 24, .greedy = 1, .threads = 2};
    int32_t rc = outpost_chat(model,
                              "[{\"role\": \"user\", \"content\": \"Which city is the capital of France?\"}]",
                              &o, NULL, collect, &first);
    if (rc != OUTPOST_OK) fail("outpost_chat");
    printf("stream: %d pieces: %s\n", first.pieces, first.text);

    /* 2. A second answer, cancelled from this thread once it has begun. */
    struct job j = {.model = model};
    OutpostCancel *cancel = outpost_cancel_new();
    j.cancel = cancel;
    pthread_t t;
    if (pthread_create(&t, NULL, generate_long, &j) != 0) return 1;
    while (__atomic_load_n(&j.answer.pieces, __ATOMIC_SEQ_CST) < 5) usleep(1000);
    outpost_cancel_trigger(cancel);
    pthread_join(t, NULL);
    outpost_cancel_free(cancel);
    printf("cancelled: rc=%d after %d pieces\n", j.rc, j.answer.pieces);
    if (j.rc != OUTPOST_CANCELLED) return 1;

    /* 3. Redact a prompt before it leaves the device; restore the answer. */
    OutpostGuard *guard = outpost_guard_new("US");
    if (!guard) fail("outpost_guard_new");
    const char *prompt = "Email jane.doe@example.com about card 4111 1111 1111 1111 today.";
    char *found = outpost_guard_scan(guard, prompt);
    if (!found) fail("outpost_guard_scan");
    printf("found: %s\n", found);
    outpost_string_free(found);
    OutpostRedaction *red = outpost_guard_redact(guard, prompt);
    if (!red) fail("outpost_guard_redact");
    printf("redacted: %s\n", outpost_redaction_text(red));
    char *restored = outpost_redaction_restore(red, "I will write to <EMAIL_ADDRESS_1> now.");
    if (!restored) fail("outpost_redaction_restore");
    printf("restored: %s\n", restored);
    outpost_string_free(restored);
    outpost_redaction_free(red);
    outpost_guard_free(guard);

    outpost_model_free(model);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("peak_rss_kib %ld\n", ru.ru_maxrss);
    return 0;
}
