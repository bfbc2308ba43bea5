// What each verb does, in the words of the business (the canvas and the forms show them).
export const VERB_WORDS = {
  answer: "Answer the call", play: "Play a message", menu: "Menu (press a key)", gather: "Collect digits",
  dial: "Ring phones", queue: "Wait in a queue", hours: "Opening hours", switch: "Choose by value",
  record: "Voicemail / record", redirect: "Forward elsewhere", goto: "Go to a step", hangup: "Hang up",
  set: "Set a variable", webhook: "Ask your system (webhook)",
};
