/* `tern settings`: every stack setting with its default, unit and meaning. */
#include <stdio.h>
#include <string.h>
#include "commands.h"
#include "tern/tern.h"

int cmd_settings(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	struct tern_settings s;
	tern_settings_default(&s);
	printf("%-20s %-12s %s\n", "setting", "default", "meaning");
	for (unsigned i = 0;; i++) {
		const struct tern_setting_desc *d = tern_settings_describe(i);
		if (!d)
			break;
		char v[32];
		tern_settings_get(&s, d->name, v, sizeof(v));
		printf("%-20s %-12s %s\n", d->name, v, d->doc);
	}
	return 0;
}
