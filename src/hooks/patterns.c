/*
** string.find, string.match, string.gmatch and string.gsub for hooks
** (src/hooks/patterns.rs). build.rs writes Lua's own lstrlib.c, from the
** lua-src crate the build resolved, with src/hooks/patterns.patch applied
** (a step count that ends matching at the hook's deadline), into OUT_DIR
** as lstrlib_patched.c; this file builds it and exports the four functions
** hooks use. Nothing of Lua's is kept in this tree.
*/

/* The vendored Lua has its own luaopen_string: this one keeps out of its way. */
#define luaopen_string rnmu_luaopen_string_patched

#include "lstrlib_patched.c"

int rnmu_str_find (lua_State *L) { return str_find(L); }
int rnmu_str_match (lua_State *L) { return str_match(L); }
int rnmu_str_gmatch (lua_State *L) { return gmatch(L); }
int rnmu_str_gsub (lua_State *L) { return str_gsub(L); }
