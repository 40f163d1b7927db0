#ifndef TERN_COMMANDS_H
#define TERN_COMMANDS_H
/* Subcommands of the tern command: each takes argv with argv[0] = its own name. */
int cmd_sim(int argc, char **argv);
int cmd_settings(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_serve(int argc, char **argv);
#endif
