// What a person sees on first login, through matrix-js-sdk: logs in with a
// password, syncs once, prints one JSON line per room (its ID, the name the
// client shows, the person's membership, the message bodies it holds), then
// logs out, leaving no device.
//
//   node tests/clients/sees.mjs BASE_URL USER PASSWORD
import * as sdk from "matrix-js-sdk";
import { logger } from "matrix-js-sdk/lib/logger.js";

const [baseUrl, user, password] = process.argv.slice(2);
// Quiet: the SDK logs to the console by default.
logger.disableAll?.();
const login = sdk.createClient({ baseUrl });
const session = await login.loginRequest({
  type: "m.login.password",
  identifier: { type: "m.id.user", user },
  password,
  initial_device_display_name: "client check",
});
const client = sdk.createClient({
  baseUrl,
  accessToken: session.access_token,
  userId: session.user_id,
  deviceId: session.device_id,
});
await new Promise((resolve, reject) => {
  client.once(sdk.ClientEvent.Sync, (state) => (state === "PREPARED" ? resolve() : reject(new Error(state))));
  client.startClient({ initialSyncLimit: 20, lazyLoadMembers: false });
});
for (const room of client.getRooms()) {
  const messages = room
    .getLiveTimeline()
    .getEvents()
    .filter((e) => e.getType() === "m.room.message")
    .map((e) => e.getContent().body);
  console.log(JSON.stringify({ room_id: room.roomId, name: room.name, membership: room.getMyMembership(), messages }));
}
client.stopClient();
await client.logout(true);
process.exit(0);
