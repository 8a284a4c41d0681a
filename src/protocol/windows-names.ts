/**
 * Names Windows keeps for devices, with or without an extension (spaces before it are
 * dropped): no file can be named so there. Local file names from folders are checked
 * against it (src/client/paths.ts), and so are user names, which name a client's key file.
 */
export const WINDOWS_DEVICE = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³]|conin\$|conout\$) *(\..*)?$/i;
