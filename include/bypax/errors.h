/* bypax error codes. Operating errors are returned as negative values
 * (-BPX_EINVAL); 0 means success. bpx_strerror() names each one. */
#ifndef BYPAX_ERRORS_H
#define BYPAX_ERRORS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, text) */
#define BPX_ERROR_LIST(X)                                                      \
	X(BPX_OK, 0, "success")                                                \
	X(BPX_EINVAL, 1, "invalid argument")                                   \
	X(BPX_ENOMEM, 2, "not enough memory")                                  \
	X(BPX_EBUSY, 3, "busy: queue or window full, retry later")             \
	X(BPX_ENOTLEADER, 4, "not the leader")                                 \
	X(BPX_ETIMEDOUT, 5, "timed out")                                       \
	X(BPX_EMALFORMED, 6, "malformed message")                              \
	X(BPX_ECLUSTER, 7, "wrong cluster id")                                 \
	X(BPX_EVERSION, 8, "unsupported version")                              \
	X(BPX_EMEMBER, 9, "sender is not a member")                            \
	X(BPX_ETOOBIG, 10, "too big")                                          \
	X(BPX_ENOTFOUND, 11, "key not found")                                  \
	X(BPX_ECASMISMATCH, 12, "compare-and-swap: value differs")             \
	X(BPX_EFULL, 13, "state machine is full")                              \
	X(BPX_ESTALE, 14, "stale request: a newer one from this client was applied") \
	X(BPX_EEXPIRED, 15, "client session expired")                          \
	X(BPX_EIO, 16, "input/output error")                                   \
	X(BPX_ECONFIG, 17, "bad configuration")                                \
	X(BPX_ENOENT, 18, "no such file or object")                            \
	X(BPX_EABI, 19, "state machine ABI version mismatch")                  \
	X(BPX_ERECOVERING, 20, "replica is recovering")

enum bpx_error {
#define BPX_ERROR_ENUM(name, value, text) name = (value),
	BPX_ERROR_LIST(BPX_ERROR_ENUM)
#undef BPX_ERROR_ENUM
	BPX_ERROR_COUNT
};

/* Returns a static string for err (either sign); never NULL. */
const char *bpx_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif
