#ifndef TERN_SIM_PRINT_H
#define TERN_SIM_PRINT_H

#include <stdio.h>
#include "scenario.h"

/* A printer turns scenario events into a ladder diagram (json = 0) or JSON Lines. Sequence
 * numbers in the ladder are relative to each side's ISN unless absolute is set. */
struct printer;
struct printer *printer_new(FILE *out, int json, int absolute);
/* A scn_run() sink. */
void printer_event(void *user, const struct scn_event *e);
void printer_flush(struct printer *p);
/* Leave segments out of the ladder (bulk transfers): states, errors and notes remain. */
void printer_quiet_segments(struct printer *p);
void printer_free(struct printer *p);

void fmt_addr(char *buf, size_t n, uint32_t addr, uint16_t port);
void fmt_flag_letters(char *buf, uint16_t flags);

#endif
