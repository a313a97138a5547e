// A janode plugin descriptor for janus.plugin.videocall. janode 1.8 ships no VideoCall helper,
// so this follows janode's documented way to add one (see its echotest-plugin.js): a subclass
// of janode's Handle whose handleMessage() turns plugin events into janode events, closing
// the pending transaction for replies and emitting the event for async ones.
//
// Events (emitted for async events; replies resolve the request's promise):
//   videocall_<result.event>  (registered, calling, incomingcall, accepted, update, set,
//                              hangup, ...) with data = { ...result, jsep? }
//   videocall_error           with data = Error("<code> <reason>")

import Handle from 'janode/handle';

const PLUGIN_ID = 'janus.plugin.videocall';

class VideoCallHandle extends Handle {
  handleMessage(janusMessage) {
    const { plugindata, transaction } = janusMessage;
    const data = plugindata && plugindata.data;
    if (!data || data.videocall !== 'event') return null;

    const ev = this._newPluginEvent(janusMessage);
    const emit = this.ownsTransaction(transaction) === false;
    if (data.result && typeof data.result.event === 'string') {
      ev.event = `videocall_${data.result.event}`;
      Object.assign(ev.data, data.result);
    } else if (data.error_code || data.error) {
      ev.event = 'videocall_error';
      ev.data = new Error(`${data.error_code} ${data.error}`);
      ev.data.code = data.error_code;
      this.closeTransactionWithError(transaction, ev.data);
    } else if (data.result && Array.isArray(data.result.list)) {
      ev.event = 'videocall_list';
      ev.data.list = data.result.list;
    }
    if (!ev.event) return null;
    this.closeTransactionWithSuccess(transaction, janusMessage);
    if (emit) this.emit(ev.event, ev.data);
    return ev;
  }

  async _request(body, jsep) {
    const reply = await this.message(body, jsep);
    const { event, data } = this._getPluginEvent(reply);
    if (!event) throw new Error(`unexpected videocall reply ${JSON.stringify(reply)}`);
    return { event, data };
  }

  register(username) {
    return this._request({ request: 'register', username });
  }

  list() {
    return this._request({ request: 'list' });
  }

  call(username, jsep) {
    return this._request({ request: 'call', username }, jsep);
  }

  accept(jsep) {
    return this._request({ request: 'accept' }, jsep);
  }

  set(params) {
    return this._request({ request: 'set', ...params });
  }

  // not hangup(): janode's Handle.hangup() is the core `hangup` verb
  hangupCall() {
    return this._request({ request: 'hangup' });
  }
}

export default {
  id: PLUGIN_ID,
  Handle: VideoCallHandle,
};
