/*
** The reference interpreter for hooks' differential tests: stock Lua,
** built from the very sources the tool links (scripts/ref-lua), with every
** standard library open. `ref-lua FILE [ARGS...]` runs FILE with ARGS as
** its `...`, writes what it prints to standard output and an error to
** standard error (exit 1).
*/
#include <stdio.h>

#include "lua.h"
#include "lauxlib.h"
#include "lualib.h"

int main (int argc, char **argv) {
  lua_State *L;
  int i, status;
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE [ARGS...]\n", argv[0]);
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "cannot create a Lua state\n");
    return 1;
  }
  luaL_openlibs(L);
  status = luaL_loadfile(L, argv[1]);
  if (status == LUA_OK) {
    for (i = 2; i < argc; i++)
      lua_pushstring(L, argv[i]);
    status = lua_pcall(L, argc - 2, LUA_MULTRET, 0);
  }
  if (status == LUA_OK) {
    for (i = 1; i <= lua_gettop(L); i++) {
      size_t len;
      const char *s = lua_tolstring(L, i, &len);
      if (s != NULL)
        fwrite(s, 1, len, stdout);
    }
  }
  if (status != LUA_OK) {
    fprintf(stderr, "%s\n", lua_tostring(L, -1));
    lua_close(L);
    return 1;
  }
  lua_close(L);
  return 0;
}
