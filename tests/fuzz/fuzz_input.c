/*
 * fuzz_input: datagrams and socket calls against a stack holding a listener, connections in
 * most states and UDP sockets, all at one instant (clock steps in the input are read and
 * ignored). See fuzz.h for the input format and fuzz_world.c for the checks.
 */
#include "fuzz.h"

int fuzz_input_one(const uint8_t *data, size_t size)
{
	fz_world_run(data, size, false);
	return 0;
}

#ifdef FUZZ_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	return fuzz_input_one(data, size);
}
#endif
