#include "bypax/errors.h"

static const char *const error_text[BPX_ERROR_COUNT] = {
#define BPX_ERROR_TEXT(name, value, text) [value] = text,
	BPX_ERROR_LIST(BPX_ERROR_TEXT)
#undef BPX_ERROR_TEXT
};

const char *bpx_strerror(int err)
{
	int code = err < 0 ? -err : err;
	if (code >= BPX_ERROR_COUNT || error_text[code] == 0)
		return "unknown error";
	return error_text[code];
}
