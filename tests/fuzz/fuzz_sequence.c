/*
 * fuzz_sequence: the records of fuzz_input with the clock moving between them, so that
 * every timer fires (retransmission, persist, keepalive, delayed ACK, TIME_WAIT, SYN-ACK
 * retries, fin_timeout) in between datagrams and socket calls. At the end every descriptor
 * is closed and the clock runs ahead until no timer is left: nothing may remain.
 */
#include "fuzz.h"

int fuzz_sequence_one(const uint8_t *data, size_t size)
{
	fz_world_run(data, size, true);
	return 0;
}

#ifdef FUZZ_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_sequence_one(data, size);
}
#endif
