/**
 * QR codes of the provisioning payload (SPEC §6) for a terminal or a PNG image.
 *
 * @module
 */

import QRCode from "qrcode";

/** Error correction level the apps expect. */
const QR_ERROR_CORRECTION = "M";

/** Renders text as a QR code of half-height block characters for a terminal. */
export async function qrTerminal(text: string): Promise<string> {
  return await QRCode.toString(text, {
    type: "terminal",
    small: true,
    errorCorrectionLevel: QR_ERROR_CORRECTION,
  });
}

/** Renders text as a QR code PNG image. */
export async function qrPng(text: string): Promise<Uint8Array> {
  const buffer = await QRCode.toBuffer(text, {
    type: "png",
    errorCorrectionLevel: QR_ERROR_CORRECTION,
    margin: 4,
    scale: 6,
  });
  return new Uint8Array(buffer);
}
